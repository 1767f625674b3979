"""The original LDM (CompVis / Stability `ldm`) key layout of single-file Stable Diffusion checkpoints, and its
one-to-one correspondence with diffusers' / transformers' parameter names (the names of tools/tiny-sd/modules.py).

Two directions, written separately on purpose, so that the round trip in make_checkpoints.py checks one against
the other instead of a function against itself:
- `*_to_ldm(name, ...)` parses a diffusers name and returns (LDM name, how): how is "same" (the tensor as is),
  "conv1x1" (a Linear weight [C, C] stored as a 1x1 convolution [C, C, 1, 1]: the VAE's mid attention), "T"
  (stored transposed: OpenCLIP's text_projection) or ("qkv", i) (part i of OpenCLIP's fused in_proj, q, k, v
  concatenated on dim 0).
- `ldm_to_*(name, ...)` parses an LDM name and returns the diffusers name(s) it holds.

Sources of the facts (read, not copied): diffusers `scripts/convert_diffusers_to_original_stable_diffusion.py`
(UNet / VAE / OpenCLIP maps), diffusers `src/diffusers/loaders/single_file_utils.py` (`convert_open_clip_checkpoint`:
in_proj split in q, k, v order, text_projection transposed, `resblocks.23` ignored), ComfyUI `comfy/utils.py`
(`transformers_convert`, `clip_text_transformers_convert`, `unet_to_diffusers`) and the LDM modules themselves
(`ldm/modules/diffusionmodules/openaimodel.py`: TimestepEmbedSequential lists, `in_layers`/`emb_layers`/
`out_layers` Sequentials of ResBlock, `Downsample.op`, `Upsample.conv`; `ldm/modules/diffusionmodules/model.py`:
Encoder/Decoder `down[i].block[j]`, `up[i]` inserted at the front so up.3 is the first decoder level, `mid.attn_1`
AttnBlock with 1x1 Conv2d q/k/v/proj_out).
SDXL (Stability's `sgm`, what sd_xl_base_1.0.safetensors holds) [recalled from sgm's openaimodel.py / encoders/
modules.py, and consistent with ComfyUI's `supported_models.SDXL.process_clip_state_dict` prefixes, read via the
search tools]: the same UNet / VAE names, plus `label_emb` = Sequential(Sequential(Linear, SiLU, Linear)) for
the added (pooled text + size ids) embedding; the text encoders under `conditioner.embedders.N.`: a transformers
CLIPTextModel as `.transformer` (FrozenCLIPEmbedder) and an open_clip model as `.model` (FrozenOpenCLIPEmbedder2).
"""
import re

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_L_PREFIX = "cond_stage_model.transformer."  # + transformers' own names (text_model.*)
OPEN_CLIP_PREFIX = "cond_stage_model.model."
# SDXL base: conditioner.embedders = [FrozenCLIPEmbedder (CLIP ViT-L), FrozenOpenCLIPEmbedder2 (OpenCLIP bigG), and
# the size / crop embedders, which have no parameters]; the refiner's has the bigG one first
SGM_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."  # + transformers' names (text_model.*)
SGM_CLIP_G_PREFIX = "conditioner.embedders.1.model."  # + open_clip names
SGM_REFINER_CLIP_G_PREFIX = "conditioner.embedders.0.model."

# ------------------------------------------------------------------------------------------ UNet
# ResBlock (openaimodel.py): in_layers = [GroupNorm, SiLU, conv], emb_layers = [SiLU, Linear],
# out_layers = [GroupNorm, SiLU, Dropout, conv], skip_connection (1x1 conv when the width changes)
RESNET_TO_LDM = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
RESNET_FROM_LDM = {v: k for k, v in RESNET_TO_LDM.items()}

UNET_TOP_TO_LDM = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",  # time_embed = [Linear, SiLU, Linear]
    "time_embedding.linear_2": "time_embed.2",
    "conv_norm_out": "out.0",  # out = [GroupNorm, SiLU, conv]
    "conv_out": "out.2",
    # SDXL's added embedding (diffusers addition_embed_type "text_time"; add_time_proj has no parameters): sgm's
    # label_emb = Sequential(Sequential(Linear, SiLU, Linear)) for num_classes "sequential"
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}
UNET_TOP_FROM_LDM = {v: k for k, v in UNET_TOP_TO_LDM.items()}


def _split_param(name):
    """'a.b.weight' -> ('a.b', 'weight')."""
    head, _, tail = name.rpartition(".")
    return head, tail


def _resnet_to_ldm(rest):
    mod, _, param = rest.partition(".")
    if mod not in RESNET_TO_LDM:
        raise KeyError(f"not a ResnetBlock2D parameter: {rest}")
    return f"{RESNET_TO_LDM[mod]}.{param}"


def _resnet_from_ldm(rest):
    for ldm, diff in RESNET_FROM_LDM.items():
        if rest.startswith(ldm + "."):
            return f"{diff}.{rest[len(ldm) + 1:]}"
    raise KeyError(f"not a ResBlock parameter: {rest}")


def _has_attn(block_type):
    return block_type.startswith("CrossAttn")


def unet_to_ldm(name, cfg):
    """diffusers UNet2DConditionModel parameter name -> (LDM name without prefix, how)."""
    L = cfg["layers_per_block"]
    n = len(cfg["block_out_channels"])
    head, param = _split_param(name)
    if head in UNET_TOP_TO_LDM:
        return f"{UNET_TOP_TO_LDM[head]}.{param}", "same"
    m = re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", name)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        assert i < n and j < L, name
        idx = 1 + i * (L + 1) + j
        if kind == "resnets":
            return f"input_blocks.{idx}.0.{_resnet_to_ldm(rest)}", "same"
        return f"input_blocks.{idx}.1.{rest}", "same"  # SpatialTransformer: the same names inside
    m = re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(weight|bias)", name)
    if m:
        i = int(m[1])
        return f"input_blocks.{1 + i * (L + 1) + L}.0.op.{m[2]}", "same"
    m = re.fullmatch(r"mid_block\.resnets\.([01])\.(.+)", name)
    if m:
        return f"middle_block.{2 * int(m[1])}.{_resnet_to_ldm(m[2])}", "same"
    m = re.fullmatch(r"mid_block\.attentions\.0\.(.+)", name)
    if m:
        return f"middle_block.1.{m[1]}", "same"
    m = re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", name)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        assert i < n and j <= L, name
        idx = i * (L + 1) + j
        if kind == "resnets":
            return f"output_blocks.{idx}.0.{_resnet_to_ldm(rest)}", "same"
        return f"output_blocks.{idx}.1.{rest}", "same"
    m = re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(weight|bias)", name)
    if m:
        i = int(m[1])
        # the Upsample follows the level's last resnet (and its attention, when the level has them)
        sub = 2 if _has_attn(cfg["up_block_types"][i]) else 1
        return f"output_blocks.{i * (L + 1) + L}.{sub}.conv.{m[2]}", "same"
    raise KeyError(f"no LDM name for UNet parameter {name}")


def ldm_to_unet(name, cfg):
    """LDM UNet name (without prefix) -> diffusers name."""
    L = cfg["layers_per_block"]
    head, param = _split_param(name)
    if head in UNET_TOP_FROM_LDM:
        return f"{UNET_TOP_FROM_LDM[head]}.{param}"
    m = re.fullmatch(r"input_blocks\.(\d+)\.([01])\.(.+)", name)
    if m:
        idx, sub, rest = int(m[1]), int(m[2]), m[3]
        i, j = divmod(idx - 1, L + 1)
        if j == L:  # the level's Downsample
            om = re.fullmatch(r"op\.(weight|bias)", rest)
            if sub != 0 or not om:
                raise KeyError(name)
            return f"down_blocks.{i}.downsamplers.0.conv.{om[1]}"
        if sub == 0:
            return f"down_blocks.{i}.resnets.{j}.{_resnet_from_ldm(rest)}"
        if not _has_attn(cfg["down_block_types"][i]):  # SDXL's first level, the refiner's last: resnets only
            raise KeyError(f"{name}: down level {i} has no attention")
        return f"down_blocks.{i}.attentions.{j}.{rest}"
    m = re.fullmatch(r"middle_block\.([012])\.(.+)", name)
    if m:
        sub, rest = int(m[1]), m[2]
        if sub == 1:
            return f"mid_block.attentions.0.{rest}"
        return f"mid_block.resnets.{sub // 2}.{_resnet_from_ldm(rest)}"
    m = re.fullmatch(r"output_blocks\.(\d+)\.([012])\.(.+)", name)
    if m:
        idx, sub, rest = int(m[1]), int(m[2]), m[3]
        i, j = divmod(idx, L + 1)
        if sub == 0:
            return f"up_blocks.{i}.resnets.{j}.{_resnet_from_ldm(rest)}"
        attn = _has_attn(cfg["up_block_types"][i])
        um = re.fullmatch(r"conv\.(weight|bias)", rest)
        if um:  # an Upsample: .1 on levels without attention, .2 after the attention otherwise
            if j != L or sub != (2 if attn else 1):
                raise KeyError(f"{name}: not where level {i}'s Upsample is")
            return f"up_blocks.{i}.upsamplers.0.conv.{um[1]}"
        if sub != 1 or not attn:
            raise KeyError(f"{name}: up level {i} has no attention there")
        return f"up_blocks.{i}.attentions.{j}.{rest}"
    raise KeyError(f"no diffusers name for LDM UNet key {name}")


# ------------------------------------------------------------------------------------------ VAE
# AttnBlock (model.py): norm, q, k, v, proj_out, all 1x1 Conv2d -- diffusers' Attention: group_norm, to_q, to_k,
# to_v, to_out.0, Linear
VAE_ATTN_TO_LDM = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
VAE_ATTN_FROM_LDM = {v: k for k, v in VAE_ATTN_TO_LDM.items()}


def _vae_resnet_to_ldm(rest):
    mod, _, param = rest.partition(".")
    if mod not in ("norm1", "conv1", "norm2", "conv2", "conv_shortcut"):
        raise KeyError(rest)
    return f"{'nin_shortcut' if mod == 'conv_shortcut' else mod}.{param}"


def _vae_resnet_from_ldm(rest):
    mod, _, param = rest.partition(".")
    if mod not in ("norm1", "conv1", "norm2", "conv2", "nin_shortcut"):
        raise KeyError(rest)
    return f"{'conv_shortcut' if mod == 'nin_shortcut' else mod}.{param}"


def _vae_mid_to_ldm(part, rest):
    """part: encoder|decoder; rest after mid_block."""
    m = re.fullmatch(r"resnets\.([01])\.(.+)", rest)
    if m:
        return f"{part}.mid.block_{int(m[1]) + 1}.{_vae_resnet_to_ldm(m[2])}", "same"
    m = re.fullmatch(r"attentions\.0\.(.+)\.(weight|bias)", rest)
    if m and m[1] in VAE_ATTN_TO_LDM:
        how = "conv1x1" if m[1] != "group_norm" and m[2] == "weight" else "same"
        return f"{part}.mid.attn_1.{VAE_ATTN_TO_LDM[m[1]]}.{m[2]}", how
    raise KeyError(rest)


def vae_to_ldm(name, cfg):
    """diffusers AutoencoderKL parameter name -> (LDM name without prefix, how)."""
    n = len(cfg["block_out_channels"])
    for same in ("quant_conv.", "post_quant_conv.", "encoder.conv_in.", "encoder.conv_out.", "decoder.conv_in.",
                 "decoder.conv_out."):
        if name.startswith(same):
            return name, "same"
    m = re.fullmatch(r"(encoder|decoder)\.conv_norm_out\.(weight|bias)", name)
    if m:
        return f"{m[1]}.norm_out.{m[2]}", "same"
    m = re.fullmatch(r"(encoder|decoder)\.mid_block\.(.+)", name)
    if m:
        return _vae_mid_to_ldm(m[1], m[2])
    m = re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name)
    if m:
        return f"encoder.down.{m[1]}.block.{m[2]}.{_vae_resnet_to_ldm(m[3])}", "same"
    m = re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(weight|bias)", name)
    if m:
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}", "same"
    # the decoder's levels are numbered from the lowest resolution in LDM (up.3 runs first), from the first
    # to run in diffusers (up_blocks.0)
    m = re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name)
    if m:
        return f"decoder.up.{n - 1 - int(m[1])}.block.{m[2]}.{_vae_resnet_to_ldm(m[3])}", "same"
    m = re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(weight|bias)", name)
    if m:
        return f"decoder.up.{n - 1 - int(m[1])}.upsample.conv.{m[2]}", "same"
    raise KeyError(f"no LDM name for VAE parameter {name}")


def ldm_to_vae(name, cfg):
    """LDM VAE name (without prefix) -> (diffusers name, how the stored tensor differs: same | conv1x1)."""
    n = len(cfg["block_out_channels"])
    for same in ("quant_conv.", "post_quant_conv.", "encoder.conv_in.", "encoder.conv_out.", "decoder.conv_in.",
                 "decoder.conv_out."):
        if name.startswith(same):
            return name, "same"
    m = re.fullmatch(r"(encoder|decoder)\.norm_out\.(weight|bias)", name)
    if m:
        return f"{m[1]}.conv_norm_out.{m[2]}", "same"
    m = re.fullmatch(r"(encoder|decoder)\.mid\.block_([12])\.(.+)", name)
    if m:
        return f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}.{_vae_resnet_from_ldm(m[3])}", "same"
    m = re.fullmatch(r"(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)", name)
    if m:
        how = "conv1x1" if m[2] != "norm" and m[3] == "weight" else "same"
        return f"{m[1]}.mid_block.attentions.0.{VAE_ATTN_FROM_LDM[m[2]]}.{m[3]}", how
    m = re.fullmatch(r"encoder\.down\.(\d+)\.block\.(\d+)\.(.+)", name)
    if m:
        return f"encoder.down_blocks.{m[1]}.resnets.{m[2]}.{_vae_resnet_from_ldm(m[3])}", "same"
    m = re.fullmatch(r"encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)", name)
    if m:
        return f"encoder.down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}", "same"
    m = re.fullmatch(r"decoder\.up\.(\d+)\.block\.(\d+)\.(.+)", name)
    if m:
        return f"decoder.up_blocks.{n - 1 - int(m[1])}.resnets.{m[2]}.{_vae_resnet_from_ldm(m[3])}", "same"
    m = re.fullmatch(r"decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)", name)
    if m:
        return f"decoder.up_blocks.{n - 1 - int(m[1])}.upsamplers.0.conv.{m[2]}", "same"
    raise KeyError(f"no diffusers name for LDM VAE key {name}")


# ------------------------------------------------------------------------------------------ text encoders
def clip_l_to_ldm(name):
    """SD-1.x: FrozenCLIPEmbedder holds a transformers CLIPTextModel as `transformer`: names unchanged."""
    if not name.startswith("text_model."):
        raise KeyError(name)
    return name, "same"


def ldm_to_clip_l(name):
    if not name.startswith("text_model."):
        raise KeyError(f"not a CLIP-L key: {name}")
    return name, "same"


def hf_text_to_file(name):
    """ComfyUI's standalone text-encoder files (clip_l.safetensors, clip_g.safetensors): transformers'
    CLIPTextModel(WithProjection) names at the root, text_projection.weight [P, D] as transformers stores it."""
    if not (name.startswith("text_model.") or name == "text_projection.weight"):
        raise KeyError(f"not a transformers CLIP text name: {name}")
    return name, "same"


def file_to_hf_text(name):
    if not (name.startswith("text_model.") or name == "text_projection.weight"):
        raise KeyError(f"not a transformers CLIP text key: {name}")
    return name, "same"


OPEN_CLIP_LAYER_TO_LDM = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}
OPEN_CLIP_LAYER_FROM_LDM = {v: k for k, v in OPEN_CLIP_LAYER_TO_LDM.items()}
QKV = ("q_proj", "k_proj", "v_proj")  # order of the rows of in_proj_weight / in_proj_bias (nn.MultiheadAttention)


def open_clip_to_ldm(name):
    """SD-2.x: FrozenOpenCLIPEmbedder holds an open_clip CLIP (visual tower deleted) as `model`.
    transformers-style name (a CLIPTextModel's, plus CLIPTextModelWithProjection's text_projection.weight)
    -> (OpenCLIP name without prefix, how)."""
    top = {
        "text_model.embeddings.token_embedding.weight": ("token_embedding.weight", "same"),
        "text_model.embeddings.position_embedding.weight": ("positional_embedding", "same"),  # a Parameter [77, D]
        "text_model.final_layer_norm.weight": ("ln_final.weight", "same"),
        "text_model.final_layer_norm.bias": ("ln_final.bias", "same"),
        "text_projection.weight": ("text_projection", "T"),  # OpenCLIP: x @ text_projection, [D, P]
    }
    if name in top:
        return top[name]
    m = re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj)\.(weight|bias)", name)
    if m:
        return f"transformer.resblocks.{m[1]}.attn.in_proj_{m[3]}", ("qkv", QKV.index(m[2]))
    m = re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", name)
    if m and m[2] in OPEN_CLIP_LAYER_TO_LDM:
        return f"transformer.resblocks.{m[1]}.{OPEN_CLIP_LAYER_TO_LDM[m[2]]}.{m[3]}", "same"
    raise KeyError(f"no OpenCLIP name for {name}")


def ldm_to_open_clip(name):
    """OpenCLIP name (without prefix) -> list of (transformers name, how); the fused in_proj gives three."""
    top = {
        "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "positional_embedding": "text_model.embeddings.position_embedding.weight",
        "ln_final.weight": "text_model.final_layer_norm.weight",
        "ln_final.bias": "text_model.final_layer_norm.bias",
    }
    if name in top:
        return [(top[name], "same")]
    if name == "text_projection":
        return [("text_projection.weight", "T")]
    m = re.fullmatch(r"transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)", name)
    if m:
        return [(f"text_model.encoder.layers.{m[1]}.self_attn.{p}.{m[2]}", ("qkv", i)) for i, p in enumerate(QKV)]
    m = re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)\.(weight|bias)", name)
    if m and m[2] in OPEN_CLIP_LAYER_FROM_LDM:
        return [(f"text_model.encoder.layers.{m[1]}.{OPEN_CLIP_LAYER_FROM_LDM[m[2]]}.{m[3]}", "same")]
    raise KeyError(f"no transformers name for OpenCLIP key {name}")
