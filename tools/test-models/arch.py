"""Architectures of the test models: diffusers/transformers configs at full scale (the published values) and
at CI scale (the same block structure and module names, narrow widths), the torch modules built from them
(tools/tiny-sd/modules.py), and the thin export wrappers that reproduce what each exporter traced.

CI scale keeps every count that shows in a module path or decides the wiring (4 down/up blocks of the same
kinds, 2 layers per block, 12 / 23 text layers, 77 positions, the mid-block attentions) and shrinks widths,
head counts and the vocabulary. Widths differ between the SD-1.x and SD-2.x text encoders (32 vs 24, the
UNets' cross-attention width with them) on purpose, so that code which hard-codes a hidden size fails on one.
"""
import os
import sys
import zlib

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "tiny-sd"))
import modules as M  # noqa: E402

DIFFUSERS_VERSION = "0.32.2"
TRANSFORMERS_VERSION = "4.48.0"

# Number of BPE merges kept in the CI tokenizer: vocabulary = 512 byte symbols + merges + 2 specials = 1514.
CI_MERGES = 1000
CI_VOCAB = 512 + CI_MERGES + 2
FULL_VOCAB = 49408

DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]


def seed_of(*parts):
    """A stable seed per (architecture, component, scale) and the run's --seed (TEST_MODELS_SEED, so worker
    processes see it too): Python's hash() is salted per process."""
    base = os.environ.get("TEST_MODELS_SEED", "0")
    return zlib.crc32(":".join([base] + [str(p) for p in parts]).encode()) & 0x7FFFFFFF


# ------------------------------------------------------------------------------------------ configs
def unet_config(family, scale, in_channels=4, time_cond_proj_dim=None):
    """diffusers UNet2DConditionModel config.json as a diffusers 0.3x save writes it. family: sd15 | sd21."""
    sd21 = family == "sd21"
    cfg = dict(
        _class_name="UNet2DConditionModel",
        _diffusers_version=DIFFUSERS_VERSION,
        act_fn="silu",
        addition_embed_type=None,
        addition_embed_type_num_heads=64,
        addition_time_embed_dim=None,
        # diffusers' (misnamed) attention_head_dim is the number of heads: SD-1.x 8 everywhere (head width
        # 40/80/160), SD-2.x one per down block (head width 64 everywhere)
        attention_head_dim=[5, 10, 20, 20] if sd21 else 8,
        attention_type="default",
        block_out_channels=[320, 640, 1280, 1280],
        center_input_sample=False,
        class_embed_type=None,
        class_embeddings_concat=False,
        conv_in_kernel=3,
        conv_out_kernel=3,
        cross_attention_dim=1024 if sd21 else 768,
        cross_attention_norm=None,
        down_block_types=list(DOWN),
        downsample_padding=1,
        dropout=0.0,
        dual_cross_attention=False,
        encoder_hid_dim=None,
        encoder_hid_dim_type=None,
        flip_sin_to_cos=True,
        freq_shift=0,
        in_channels=in_channels,
        layers_per_block=2,
        mid_block_only_cross_attention=None,
        mid_block_scale_factor=1,
        mid_block_type="UNetMidBlock2DCrossAttn",
        norm_eps=1e-05,
        norm_num_groups=32,
        num_attention_heads=None,
        num_class_embeds=None,
        only_cross_attention=False,
        out_channels=4,
        projection_class_embeddings_input_dim=None,
        resnet_out_scale_factor=1.0,
        resnet_skip_time_act=False,
        resnet_time_scale_shift="default",
        reverse_transformer_layers_per_block=None,
        sample_size=96 if sd21 else 64,
        time_cond_proj_dim=time_cond_proj_dim,
        time_embedding_act_fn=None,
        time_embedding_dim=None,
        time_embedding_type="positional",
        timestep_post_act=None,
        transformer_layers_per_block=1,
        up_block_types=list(UP),
        upcast_attention=sd21,
        use_linear_projection=sd21,
    )
    if scale == "ci":
        cfg.update(
            block_out_channels=[8, 16, 16, 16],
            norm_num_groups=4,
            cross_attention_dim=24 if sd21 else 32,
            # head width 8 in every SD-2.x-like block; the list is not constant, so the reversed order of the
            # up blocks (up_blocks.3 gets 1 head) is exercised
            attention_head_dim=[1, 2, 2, 2] if sd21 else 2,
            sample_size=8,
        )
    return cfg


def text_config(family, scale):
    """transformers CLIPTextConfig (config.json). sd15: CLIP ViT-L/14; sd21: OpenCLIP ViT-H/14 as diffusers
    ships it (23 of its 24 layers, so last_hidden_state is OpenCLIP's penultimate layer + final norm)."""
    sd21 = family == "sd21"
    cfg = {
        "_name_or_path": "stabilityai/stable-diffusion-2-1/text_encoder" if sd21 else "openai/clip-vit-large-patch14",
        "architectures": ["CLIPTextModel"],
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "dropout": 0.0,
        "eos_token_id": 2,
        "hidden_act": "gelu" if sd21 else "quick_gelu",
        "hidden_size": 1024 if sd21 else 768,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": 4096 if sd21 else 3072,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 77,
        "model_type": "clip_text_model",
        "num_attention_heads": 16 if sd21 else 12,
        "num_hidden_layers": 23 if sd21 else 12,
        "pad_token_id": 1,
        "projection_dim": 512 if sd21 else 768,
        "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION,
        "vocab_size": FULL_VOCAB,
    }
    if scale == "ci":
        cfg.update(hidden_size=24 if sd21 else 32, intermediate_size=96 if sd21 else 128,
                   num_attention_heads=3 if sd21 else 4, projection_dim=24 if sd21 else 32, vocab_size=CI_VOCAB)
    return cfg



# ------------------------------------------------------------------------------------------ SDXL
# SDXL base (stabilityai/stable-diffusion-xl-base-1.0) and refiner (-refiner-1.0) UNet configs [recalled from the
# hub's unet/config.json; diffusers 0.19.0.dev0 wrote them]. diffusers' attention_head_dim is the number of heads
# (head width 64 everywhere); transformer_layers_per_block is per down block, reversed for the up blocks, the
# last entry for the mid block.
SDXL_UNET = {
    "sdxl": dict(block_out_channels=[320, 640, 1280], attention_head_dim=[5, 10, 20],
                 down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                 up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                 transformer_layers_per_block=[1, 2, 10], cross_attention_dim=2048,
                 projection_class_embeddings_input_dim=2816),
    "sdxl-refiner": dict(block_out_channels=[384, 768, 1536, 1536], attention_head_dim=[6, 12, 24, 24],
                         down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                         up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                         transformer_layers_per_block=4, cross_attention_dim=1280,
                         projection_class_embeddings_input_dim=2560),
}
# CI: head width 8 (1, 2, 4 heads: the up blocks' reversed list differs from the down blocks'), 4 norm groups;
# the cross-attention width is te1 + te2 (32 + 40) for the base, te2 (40) for the refiner, text_embeds 48 wide
# (te2's projection_dim, not its hidden size), addition_time_embed_dim kept at 256 (it is the interface: time_ids
# go through a 256-wide sinusoid each, so projection_class_embeddings_input_dim = 48 + 6 * 256 / 48 + 5 * 256).
SDXL_UNET_CI = {
    "sdxl": dict(block_out_channels=[8, 16, 32], attention_head_dim=[1, 2, 4], cross_attention_dim=72,
                 projection_class_embeddings_input_dim=48 + 6 * 256),
    "sdxl-refiner": dict(block_out_channels=[8, 16, 24, 24], attention_head_dim=[1, 2, 3, 3], cross_attention_dim=40,
                         projection_class_embeddings_input_dim=48 + 5 * 256),
}
SDXL_TIME_IDS = {"sdxl": 6, "sdxl-refiner": 5}  # (orig h, w, crop top, left, target h, w) / (..., aesthetic score)
# Distillations of SDXL base: the base architecture with their own weights. SDXL-Turbo (stabilityai/sdxl-turbo,
# adversarial diffusion distillation) is trained at 512 px: unet sample_size 64 [recalled]. LCM-SDXL
# (latent-consistency/lcm-sdxl) adds the guidance-scale embedding input: time_cond_proj_dim 256 [recalled], as
# LCM_Dreamshaper_v7 for SD-1.5 (the `lcm` layout).
SDXL_DISTILLED = {"sdxl-turbo": dict(sample_size=64), "lcm-sdxl": dict(time_cond_proj_dim=256)}


def sdxl_base_arch(arch):
    """The SDXL architecture an arch has: 'sdxl' for the base and its distillations, else itself."""
    return "sdxl" if arch in SDXL_DISTILLED else arch


def sdxl_unet_config(arch, scale):
    refiner = arch == "sdxl-refiner"
    base = sdxl_base_arch(arch)
    cfg = unet_config("sd15", "full")
    cfg.update(SDXL_UNET[base])
    cfg.update(_diffusers_version="0.19.0.dev0", addition_embed_type="text_time", addition_time_embed_dim=256,
               sample_size=128, upcast_attention=None, use_linear_projection=True)
    cfg.update(SDXL_DISTILLED.get(arch, {}))
    if scale == "ci":
        cfg.update(SDXL_UNET_CI[base], norm_num_groups=4, sample_size=8)
    # optimum-cli sets these on the UNet's config before saving it (its ONNX config reads them to build the
    # text_embeds / time_ids inputs) [recalled: optimum exporters/utils.py _get_submodels_for_export_diffusion]
    te2 = sdxl_text_config(2, scale)
    cfg.update(requires_aesthetics_score=refiner, text_encoder_projection_dim=te2["projection_dim"])
    return dict(sorted(cfg.items()))


def sdxl_text_config(which, scale):
    """SDXL's text encoders [recalled from the hub's text_encoder/ and text_encoder_2/config.json]: 1 = OpenAI
    CLIP ViT-L/14 (CLIPTextModel, as SD-1.x's), 2 = OpenCLIP ViT-bigG/14 as transformers ships it
    (CLIPTextModelWithProjection: 32 layers, 1280 wide, 20 heads, 5120 inner, exact gelu, projection 1280 without
    bias). Both have eos_token_id 2, so transformers pools at argmax(input_ids) (its legacy rule), which is the
    EOS since <|endoftext|> is the highest id. CI: 32 / 40 wide (4 / 5 heads of 8), te2's projection 48."""
    cfg = text_config("sd15", scale)
    cfg["_name_or_path"] = "stabilityai/stable-diffusion-xl-base-1.0/text_encoder" + ("_2" if which == 2 else "")
    if which == 2:
        cfg.update(architectures=["CLIPTextModelWithProjection"], hidden_act="gelu", hidden_size=1280,
                   intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32, projection_dim=1280)
        if scale == "ci":
            cfg.update(hidden_size=40, intermediate_size=160, num_attention_heads=5, projection_dim=48)
    return cfg


class SDXLUNet(M.UNet2DConditionModel):
    """optimum's SDXL UNet signature: (sample, timestep, encoder_hidden_states, text_embeds, time_ids), the two
    last ones being diffusers' added_cond_kwargs; the timestep handled as SDUNet does. An LCM-SDXL UNet
    (time_cond_proj_dim) takes timestep_cond last, as optimum's UNetOnnxConfig orders it [recalled]."""

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids, timestep_cond=None):
        t = timestep[None] if timestep.dim() == 0 else timestep
        t = t.expand(sample.shape[0])
        return super().forward(sample, t, encoder_hidden_states, timestep_cond, text_embeds, time_ids)


class ClipHiddenStates(nn.Module):
    """optimum's CLIP text export with output_hidden_states (set for both SDXL encoders): last_hidden_state,
    pooler_output (CLIPTextModel) or text_embeds first, then last_hidden_state (CLIPTextModelWithProjection),
    then hidden_states.0..L. Attributes keep transformers' scope names (/text_model/..., /text_projection)."""

    def __init__(self, model):
        super().__init__()
        self.text_model = model.text_model
        self.text_projection = getattr(model, "text_projection", None)

    def forward(self, input_ids):
        states = []
        last, pooled = self.text_model(input_ids, states)
        if self.text_projection is not None:
            return (self.text_projection(pooled), last, *states)
        return (last, pooled, *states)


def build_sdxl_unet(cfg, seed):
    torch.manual_seed(seed)
    return perturb_norms(SDXLUNet(cfg).eval(), seed + 1)


def transformer_scopes(model):
    """{ONNX scope of each Transformer2DModel ('/down_blocks.1/attentions.0/'): its number of blocks}."""
    import re

    return {"/" + re.sub(r"\.(?!\d)", "/", name) + "/": len(m.transformer_blocks)
            for name, m in model.named_modules() if isinstance(m, M.Transformer2DModel)}


def build_sdxl_text(cfg, seed):
    torch.manual_seed(seed)
    cls = M.CLIPTextModelWithProjection if cfg["architectures"] == ["CLIPTextModelWithProjection"] else M.CLIPTextModel
    return perturb_norms(cls(cfg).eval(), seed + 1)

def vae_config(scale, sample_size=512, scaling_factor=0.18215):
    cfg = dict(
        _class_name="AutoencoderKL",
        _diffusers_version=DIFFUSERS_VERSION,
        act_fn="silu",
        block_out_channels=[128, 256, 512, 512],
        down_block_types=["DownEncoderBlock2D"] * 4,
        force_upcast=True,
        in_channels=3,
        latent_channels=4,
        latents_mean=None,
        latents_std=None,
        layers_per_block=2,
        mid_block_add_attention=True,
        norm_num_groups=32,
        out_channels=3,
        sample_size=sample_size,
        scaling_factor=scaling_factor,
        shift_factor=None,
        up_block_types=["UpDecoderBlock2D"] * 4,
        use_post_quant_conv=True,
        use_quant_conv=True,
    )
    if scale == "ci":
        cfg.update(block_out_channels=[8, 16, 16, 16], norm_num_groups=4, sample_size=64)
    return cfg


# ------------------------------------------------------------------------------------------ modules
class SDUNet(M.UNet2DConditionModel):
    """diffusers' timestep handling in front of the tiny-sd UNet: a 0-d timestep becomes [1], any 1-d timestep
    is then expanded to the batch (so a [1] timestep also serves a batch of 2, as in diffusers)."""

    def forward(self, sample, timestep, encoder_hidden_states, timestep_cond=None):
        t = timestep[None] if timestep.dim() == 0 else timestep
        t = t.expand(sample.shape[0])
        return super().forward(sample, t, encoder_hidden_states, timestep_cond)


class VaeEncoderParams(nn.Module):
    """optimum >= 1.23: `latent_parameters` = the DiagonalGaussian's parameters = quant_conv(encoder(x)) (mean
    and logvar on channels). Attributes at top level keep AutoencoderKL's scope names (/encoder/..., /quant_conv)."""

    def __init__(self, vae):
        super().__init__()
        self.encoder = vae.encoder
        self.quant_conv = vae.quant_conv

    def forward(self, sample):
        return self.quant_conv(self.encoder(sample))


class VaeEncoderSampled(VaeEncoderParams):
    """optimum <= 1.22 and diffusers' conversion script: `latent_dist.sample()` traced into the graph. The noise
    is drawn with torch.randn of the mean's (traced, dynamic) shape as diffusers' randn_tensor does, which the
    exporter writes as ConstantOfShape -> RandomNormalLike."""

    def forward(self, sample):
        mean, logvar = torch.chunk(self.quant_conv(self.encoder(sample)), 2, dim=1)
        logvar = torch.clamp(logvar, -30.0, 20.0)
        std = torch.exp(0.5 * logvar)
        return mean + std * torch.randn(mean.shape, dtype=mean.dtype)


def perturb_norms(model, seed):
    """PyTorch initialises every LayerNorm/GroupNorm to weight 1, bias 0. Left so, the affine part of every norm
    is untested, and the exporter merges the identical tensors into one shared initializer (plus Identity
    nodes), which trained exports never show. Seeded values near (1, 0) keep the activations in range."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.LayerNorm, nn.GroupNorm)) and m.weight is not None:
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model


def build_unet(cfg, seed):
    torch.manual_seed(seed)
    return perturb_norms(SDUNet(cfg).eval(), seed + 1)


def build_text(cfg, seed):
    torch.manual_seed(seed)
    return perturb_norms(M.CLIPTextModel(cfg).eval(), seed + 1)


def build_vae(cfg, seed):
    torch.manual_seed(seed)
    # encoder_downsample_padding=0: Stable Diffusion's VAE pads (0, 1, 0, 1) before each stride-2 conv
    return perturb_norms(M.AutoencoderKL(cfg, encoder_downsample_padding=0).eval(), seed + 1)


def text_hidden_states(text, input_ids, replace=None):
    """transformers' hidden_states: [embeddings, output of layer 1, ..., output of layer L] (before the final
    layer norm), and last_hidden_state. replace=(position, vector) swaps that position's token embedding (what
    a textual-inversion embedding does) before the position embedding is added."""
    tm = text.text_model
    s = input_ids.shape[-1]
    tok = tm.embeddings.token_embedding(input_ids)
    if replace is not None:
        pos, vec = replace
        tok = tok.clone()
        tok[:, pos] = vec
    x = tok + tm.embeddings.position_embedding(tm.embeddings.position_ids[:, :s])
    states = [x]
    mask = tm.causal_mask[:, :s, :s]
    for layer in tm.encoder.layers:
        x = layer(x, mask)
        states.append(x)
    return states, tm.final_layer_norm(x)


def count_params(m):
    return sum(p.numel() for p in m.parameters())


def guidance_embedding(w, dim=256):
    """LCM's guidance-scale embedding (diffusers' LatentConsistencyModelPipeline.get_guidance_scale_embedding):
    sinusoids of (w - 1) * 1000 at log-spaced frequencies exp(-i * ln(10000) / (dim/2 - 1)), [sin | cos]."""
    w = (torch.as_tensor(w, dtype=torch.float32) - 1.0) * 1000.0
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32) * -(torch.log(torch.tensor(10000.0)) / (half - 1)))
    e = w[:, None] * freq[None, :]
    return torch.cat([torch.sin(e), torch.cos(e)], dim=1)
