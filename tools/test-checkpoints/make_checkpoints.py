"""Random-weight single-file Stable Diffusion checkpoints in the original LDM key layout (what ComfyUI's
`models/checkpoints`, `models/vae` and `models/loras` hold; SDXL in Stability's sgm variant of it, and ComfyUI's
standalone `models/clip` files), with PyTorch references computed by the diffusers-named modules
(tools/tiny-sd/modules.py) built from the same weights. See README.md.

    /usr/bin/python3 tools/test-checkpoints/make_checkpoints.py --out DIR --scale ci|full [--only NAME,...] [--list]
"""
import argparse
import copy
import ctypes
import gc
import hashlib
import json
import math
import os
import re
import sys
import time
from collections import Counter

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "test-models"))
import arch as A  # noqa: E402  (also puts tools/tiny-sd on the path)
import clip_bpe  # noqa: E402
import modules as M  # noqa: E402
import kohya_lora as K  # noqa: E402
import ldm_layout as LD  # noqa: E402
import safetensors_io as S  # noqa: E402

FORMAT = "gategraph-test-checkpoints/reference/1"
PROMPT = "a photo of an astronaut riding a horse on mars"
# The prompt's ids from CLIP's BPE (tools/test-models/clip_bpe.py on packages/diffusion/assets/clip-tokenizer;
# CI: the vocabulary cut to its first 1,000 merges, <|startoftext|> 1512, <|endoftext|> 1513), checked once.
PROMPT_IDS = {
    "ci": [1512, 320, 1125, 539, 550, 64, 807, 521, 627, 339, 553, 796, 320, 1407, 611, 525, 675, 338, 1513],
    "full": [49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 7496, 49407],
}
LATENT_HW = {"ci": (8, 16), "full": (32, 32)}  # CI deliberately not square
TIMESTEP = 621.5
LORA_STRENGTH_MODEL = 0.8
LORA_STRENGTH_CLIP = -0.5
LORA_STACKED_MODEL = 0.3
V_PRED_KEY = "output_blocks.11.1.transformer_blocks.0.norm1.bias"
V_PRED_THRESHOLD = 0.09  # ComfyUI supported_models.SD20.model_type: std(unbiased=False) > 0.09 -> v-prediction
MISSING_KEY = "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight"
EXTRA_KEY = "model.diffusion_model.unknown_module.weight"
SMALL = "sd15-small"  # item and model family name of the small checkpoint at the builders' defaults
SDXL_SMALL = "sdxl-small"  # SDXL base (sgm layout) at the same defaults' divisibility, float16
SDXL_REFINER_SMALL = "sdxl-refiner-small"
CLIP_L_SMALL = "clip-l-small"  # ComfyUI's standalone text-encoder files, holding sdxl-small's text encoders
CLIP_G_SMALL = "clip-g-small"
SDXL_ITEMS = (SDXL_SMALL, SDXL_REFINER_SMALL, CLIP_L_SMALL, CLIP_G_SMALL)
# SDXL base at its published widths, holding tools/test-models' full-scale sdxl export's weights: 6.9 GB, so it
# exists at --scale full only (a CI run without --only leaves it out)
SDXL_FULL = "sdxl-full"
FULL_ONLY = (SDXL_FULL,)
SDXL_EXPORT = os.path.join(ROOT, ".gategraph", "test-models-full", "sdxl")  # make_test_models.py's default place
# SAI's model-spec key that published SDXL files carry [recalled, not read from a file]
SDXL_META = {SDXL_SMALL: {"modelspec.architecture": "stable-diffusion-xl-v1-base"},
             SDXL_REFINER_SMALL: {"modelspec.architecture": "stable-diffusion-xl-v1-refiner"},
             SDXL_FULL: {"modelspec.architecture": "stable-diffusion-xl-v1-base"}}
# (original height, width, crop top, left, target height, width) per batch item, not square and with a crop so a
# swapped or dropped id shows; the refiner's last id is the aesthetic score (6.0 / 2.5: diffusers' defaults for
# the positive / negative prompt)
SDXL_TIME_IDS = {"sdxl": [[1024, 1024, 0, 0, 1024, 1024], [512, 768, 16, 32, 1024, 1024]],
                 "sdxl-refiner": [[1024, 1024, 0, 0, 6.0], [512, 768, 16, 32, 2.5]]}
CLIP_TOKENIZER = os.path.join(ROOT, "packages", "diffusion", "assets", "clip-tokenizer")

ITEMS = {  # name -> (file, what)
    "sd15": ("sd15.safetensors", "SD-1.5 checkpoint, float32: UNet + CLIP ViT-L/14 + VAE + LDM buffers"),
    "sd15-fp16": ("sd15-fp16.safetensors", "sd15's tensors in float16 (integer buffers unchanged)"),
    "sd15-bf16": ("sd15-bf16.safetensors", "sd15's tensors in bfloat16 (integer buffers unchanged)"),
    "sd21v": ("sd21v.safetensors", "SD-2.1-768-v checkpoint, float32: UNet (context 1024-like, linear proj) + "
                                   "OpenCLIP-H (24 resblocks) + VAE + LDM buffers"),
    "sd15-inpaint": ("sd15-inpaint.safetensors", "SD-1.5 inpainting checkpoint: 9 UNet input channels"),
    "vae-ft": ("vae-ft.safetensors", "standalone VAE (ft-MSE style: LDM VAE keys without prefix), own weights"),
    "lora-kohya": ("lora-kohya.safetensors", "kohya LoRA for sd15, rank 4, alpha 2, float16"),
    "sd15-missing-key": ("sd15-missing-key.safetensors", f"sd15 without {MISSING_KEY}"),
    "sd15-extra-key": ("sd15-extra-key.safetensors", f"sd15 plus an unknown key {EXTRA_KEY}"),
    "sd15-ckpt": ("sd15.ckpt", "torch.save pickle (zip) of sd15's LDM state dict: to be refused, never unpickled"),
    SMALL: ("sd15-small.safetensors", "SD-1.5 key layout at the published defaults' divisibility (32 groups, "
                                      "64-dim heads, real CLIP vocabulary), for end-to-end tests through the loaders"),
    SDXL_SMALL: ("sdxl-small.safetensors", "SDXL base in Stability's sgm layout, float16, at the published defaults' "
                                           "divisibility: UNet (text_time, transformer depths 1/2/10) + CLIP-L-like + "
                                           "OpenCLIP-bigG-like (32 resblocks) + VAE"),
    SDXL_REFINER_SMALL: ("sdxl-refiner-small.safetensors", "SDXL refiner in the sgm layout, float16: UNet (4 levels, "
                                                           "depth 4, aesthetic score) + sdxl-small's bigG-like "
                                                           "encoder and VAE"),
    CLIP_L_SMALL: ("clip_l-small.safetensors", "ComfyUI-style standalone CLIP-L file (transformers names), float16: "
                                               "sdxl-small's text encoder 1"),
    CLIP_G_SMALL: ("clip_g-small.safetensors", "ComfyUI-style standalone CLIP-G file (transformers names + "
                                               "text_projection.weight), float16: sdxl-small's text encoder 2"),
    SDXL_FULL: ("sdxl.safetensors", "SDXL base at its published widths (UNet 2.57 B parameters, CLIP ViT-L/14, "
                                    "OpenCLIP ViT-bigG/14, SD's VAE) in the sgm layout, float16, holding exactly the "
                                    "weights of tools/test-models' full-scale sdxl export (--scale full only)"),
}


def small_configs():
    """sd15-small's configs (the same at both scales): every value a builder cannot read from shapes is the
    published default, so the file builds with no overrides. GroupNorm 32 groups in UNet and VAE (all widths
    multiples of 32); SD-1.5's block structure (4 levels, 2 res blocks, transformers at levels 0-2, UNetMidBlock2D-
    CrossAttn, 1x1-conv projections); cross-attention width = the text width 64. Heads: 64 channels each, the
    default for a context other than 768 (ComfyUI's BASE num_head_channels 64; SD-1.5's 8 heads go with context
    768, which needs a 768-wide text encoder: 152 MB of token embedding alone), i.e. 1 head per block, of 32
    channels at level 0 (builders take max(1, width // 64)). Text: CLIP with 64-dim heads (width 64, 1 head),
    12 layers, the full vocabulary (49,408) and 77 positions. VAE: 4 latent channels, 4 levels (8x)."""
    unet = A.unet_config("sd15", "full")
    unet.update(block_out_channels=[32, 64, 64, 64], cross_attention_dim=64, attention_head_dim=1)
    text = A.text_config("sd15", "full")
    text.update(hidden_size=64, intermediate_size=256, num_attention_heads=1, projection_dim=64)
    vae = A.vae_config("full")
    vae.update(block_out_channels=[32, 64, 64, 64])
    assert unet["norm_num_groups"] == vae["norm_num_groups"] == 32 and text["vocab_size"] == A.FULL_VOCAB
    return {"unet": unet, "text": text, "vae": vae}


def sdxl_small_configs():
    """sdxl-small's / sdxl-refiner-small's configs, the same at both scales, on sd15-small's rules (32 norm groups,
    64-channel heads, CLIP's full vocabulary and 77 positions, all widths multiples of 64 where heads are): SDXL's
    block structure (arch.py's full configs: levels, transformer depths, linear projections, text_time added
    embedding with 256-wide time-id sinusoids) at widths [32, 64, 64] / [32, 64, 64, 64]. Text encoders 64 wide
    (1 head of 64, MLP 256): 1 = CLIP ViT-L-like (12 layers, quick_gelu), 2 = OpenCLIP bigG-like (32 layers, exact
    gelu, projection 64 without bias). Cross-attention = te1 + te2 = 128 (base) / te2 = 64 (refiner); the added
    embedding's input = te2's projection 64 + 6 (base) / 5 (refiner) time ids x 256."""
    te1 = A.sdxl_text_config(1, "full")
    te1.update(hidden_size=64, intermediate_size=256, num_attention_heads=1, projection_dim=64)
    te2 = A.sdxl_text_config(2, "full")
    te2.update(hidden_size=64, intermediate_size=256, num_attention_heads=1, projection_dim=64)
    base = A.sdxl_unet_config("sdxl", "full")
    base.update(block_out_channels=[32, 64, 64], attention_head_dim=[1, 1, 1],
                cross_attention_dim=te1["hidden_size"] + te2["hidden_size"],
                projection_class_embeddings_input_dim=te2["projection_dim"] + 6 * base["addition_time_embed_dim"],
                text_encoder_projection_dim=te2["projection_dim"])
    refiner = A.sdxl_unet_config("sdxl-refiner", "full")
    refiner.update(block_out_channels=[32, 64, 64, 64], attention_head_dim=[1, 1, 1, 1],
                   cross_attention_dim=te2["hidden_size"],
                   projection_class_embeddings_input_dim=te2["projection_dim"] + 5 * refiner["addition_time_embed_dim"],
                   text_encoder_projection_dim=te2["projection_dim"])
    assert base["transformer_layers_per_block"] == [1, 2, 10] and refiner["transformer_layers_per_block"] == 4
    assert base["norm_num_groups"] == refiner["norm_num_groups"] == 32 and base["use_linear_projection"]
    assert te2["num_hidden_layers"] == 32 and te2["hidden_act"] == "gelu" and te1["hidden_act"] == "quick_gelu"
    assert te1["vocab_size"] == te2["vocab_size"] == A.FULL_VOCAB and te1["max_position_embeddings"] == 77
    return {"unet": base, "unet_refiner": refiner, "text_1": te1, "text_2": te2, "vae": small_configs()["vae"]}


def is_sd1(family):
    return family in ("sd15", SMALL)


def log(msg):
    print(msg, flush=True)


def gen(*parts):
    return torch.Generator().manual_seed(A.seed_of("test-checkpoints", *parts))


# ------------------------------------------------------------------------------------------ models
class Models:
    """The diffusers-named torch modules, built on first use. Seeds are tools/test-models' (arch.seed_of), so
    sd15 holds the weights of test-models' sd15-* folders, sd21v those of sd21-v (+ a 24th text layer and the
    v-prediction statistic), sd15-inpaint those of sd15-inpaint."""

    def __init__(self, scale):
        self.scale = scale
        self.cache = {}

    def get(self, key, build):
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]

    def unet_cfg(self, family, in_channels=4):
        if family == SMALL:
            return dict(small_configs()["unet"], in_channels=in_channels)
        return A.unet_config(family, self.scale, in_channels=in_channels)

    def unet(self, family):
        def build():
            return A.build_unet(self.unet_cfg(family), A.seed_of(family, "unet", self.scale))
        m = self.get(("unet", family), build)
        if family == "sd21" and not getattr(m, "_v_checked", False):
            self.v_pred_fix = ensure_v_statistic(m, self.unet_cfg("sd21"))
            m._v_checked = True
        return m

    def unet_inpaint(self):
        def build():
            cfg = self.unet_cfg("sd15", 9)
            m = A.build_unet(cfg, A.seed_of("sd15-inpaint", "unet", self.scale))
            own = m.state_dict()
            for k, v in self.unet("sd15").state_dict().items():
                if own[k].shape == v.shape:  # all but conv_in.weight [C, 9, 3, 3]
                    own[k] = v.clone()
            m.load_state_dict(own)
            return m
        return self.get(("unet", "sd15-inpaint"), build)

    def text_cfg(self, family):
        if family == SMALL:
            return small_configs()["text"]
        cfg = A.text_config(family, self.scale)
        if family == "sd21":
            cfg = dict(cfg, num_hidden_layers=24)  # the file holds all of OpenCLIP-H's 24 resblocks
        return cfg

    def text(self, family):
        def build():
            base = small_configs()["text"] if family == SMALL else A.text_config(family, self.scale)
            m = A.build_text(base, A.seed_of(family, "text_encoder", self.scale))
            if family == "sd21":
                # diffusers' SD-2 text encoder is OpenCLIP's first 23 layers (test-models' sd21 weights); the
                # checkpoint has a 24th, seeded on its own so the first 23 stay test-models' ones
                torch.manual_seed(A.seed_of("sd21", "text_encoder-resblock-23", self.scale))
                layer = M.CLIPEncoderLayer(base["hidden_size"], base["intermediate_size"],
                                           base["num_attention_heads"], base["layer_norm_eps"], base["hidden_act"])
                A.perturb_norms(layer, A.seed_of("sd21", "text_encoder-resblock-23-norms", self.scale))
                m.text_model.encoder.layers.append(layer.eval())
            return m
        return self.get(("text", family), build)

    def text_projection(self):
        """OpenCLIP's text_projection as transformers' CLIPTextModelWithProjection names it (Linear weight [P, D])."""
        def build():
            cfg = self.text_cfg("sd21")
            d, p = cfg["hidden_size"], cfg["projection_dim"]
            return torch.randn(p, d, generator=gen("sd21", "text_projection", self.scale)) / d ** 0.5
        return self.get(("text_projection",), build)

    def sdxl(self, part):
        """sdxl-small's modules: unet | unet_refiner | text_1 | text_2 | vae. Seeded without the scale, so the
        files are byte-identical at --scale ci and full; the refiner shares text_2 and vae (as the published
        refiner ships SDXL base's bigG encoder), with its own UNet."""
        cfg = sdxl_small_configs()[part]
        seed = A.seed_of(SDXL_SMALL, part)
        build = (A.build_sdxl_unet if part.startswith("unet") else A.build_sdxl_text if part.startswith("text")
                 else A.build_vae)
        return self.get(("sdxl", part), lambda: build(cfg, seed))

    def vae_cfg(self, which="sd"):
        return small_configs()["vae"] if which == SMALL else A.vae_config(self.scale)

    def vae(self, which):
        seed = A.seed_of({"sd": "sd", "ft": "vae-ft"}.get(which, which), "vae", self.scale)
        return self.get(("vae", which), lambda: A.build_vae(self.vae_cfg(which), seed))


def ensure_v_statistic(unet, cfg):
    """ComfyUI tells SD-2 768-v from SD-2 base (epsilon) by std(output_blocks.11.1.transformer_blocks.0.norm1.bias,
    unbiased=False) > 0.09. Random near-(1, 0) norms give ~0.1 with a wide spread at CI widths (8 values), so the
    tensor is rescaled to std 0.15 when it is not clearly above (std <= 0.095); otherwise it is left as built, and
    the UNet keeps tools/test-models' sd21 weights exactly (the case at CI scale with the default seed)."""
    name = next(k for k in unet.state_dict() if LD.unet_to_ldm(k, cfg)[0] == V_PRED_KEY)
    t = dict(unet.named_parameters())[name]
    std = float(t.detach().std(unbiased=False))
    if std > 0.095:
        return {"diffusers_name": name, "std": std, "rescaled": False}
    with torch.no_grad():
        t.mul_(0.15 / std)
    return {"diffusers_name": name, "std_before": std, "std": float(t.detach().std(unbiased=False)), "rescaled": True}


# ------------------------------------------------------------------------------------------ LDM buffers
def ldm_schedule_buffers():
    """LatentDiffusion.register_schedule (ldm/models/diffusion/ddpm.py) for SD's linear schedule: betas =
    linspace(sqrt(0.00085), sqrt(0.012), 1000, float64) ** 2, every buffer computed in float64, stored float32."""
    n = 1000
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, n, dtype=torch.float64) ** 2
    alphas = 1.0 - betas
    ac = torch.cumprod(alphas, 0)
    ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)  # v_posterior = 0
    bufs = {
        "betas": betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": ac.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1.0 - ac).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - ac).log(),
        "sqrt_recip_alphas_cumprod": (1.0 / ac).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / ac - 1).sqrt(),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": post_var.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * ac_prev.sqrt() / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * alphas.sqrt() / (1.0 - ac),
    }
    return {k: v.float() for k, v in bufs.items()}


def ldm_extras(family):
    """The non-weight tensors real LDM checkpoints carry: {name: (tensor, float?)}."""
    out = {k: v for k, v in ldm_schedule_buffers().items()}
    out["model_ema.decay"] = torch.tensor(0.9999, dtype=torch.float32)  # LitEma buffers: float32 / int32 0-d
    out["model_ema.num_updates"] = torch.tensor(0, dtype=torch.int32)
    if is_sd1(family):
        # transformers' CLIPTextEmbeddings buffer, persistent in the transformers versions SD-1 was saved with
        out[LD.CLIP_L_PREFIX + "text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
    else:
        out[LD.OPEN_CLIP_PREFIX + "logit_scale"] = torch.tensor(math.log(100.0), dtype=torch.float32)
    return out


SCHEDULE_KEYS = frozenset(ldm_schedule_buffers())  # computed once: is_extra runs for every key of every file
LOGIT_SCALE_KEYS = frozenset(p + "logit_scale" for p in (LD.OPEN_CLIP_PREFIX, LD.SGM_CLIP_G_PREFIX,
                                                         LD.SGM_REFINER_CLIP_G_PREFIX))


def is_extra(key):
    """Keys a builder must recognise as non-weights (independent of ldm_extras, for the read-back)."""
    return (key in SCHEDULE_KEYS or key.startswith("model_ema.")
            or key.endswith("text_model.embeddings.position_ids") or key in LOGIT_SCALE_KEYS)


# ------------------------------------------------------------------------------------------ mapping
def map_component(sd, to_ldm, prefix):
    """diffusers state dict -> {LDM key: tensor}; every diffusers tensor is used exactly once and no LDM key is
    produced twice (fused q/k/v: exactly once per part)."""
    out, fused, used = {}, {}, Counter()
    for name, t in sd.items():
        ldm, how = to_ldm(name)
        key = prefix + ldm
        used[name] += 1
        if isinstance(how, tuple) and how[0] == "qkv":
            parts = fused.setdefault(key, [None, None, None])
            assert parts[how[1]] is None, f"{key} part {how[1]} twice"
            parts[how[1]] = t
            continue
        assert key not in out, f"two diffusers tensors map to {key}"
        if how == "same":
            out[key] = t
        elif how == "conv1x1":
            out[key] = t.reshape(*t.shape, 1, 1)
        elif how == "T":
            out[key] = t.t().contiguous()
        else:
            raise ValueError(how)
    for key, parts in fused.items():
        assert all(p is not None for p in parts) and key not in out, key
        out[key] = torch.cat(parts, 0)
    assert len(used) == len(sd) and set(used.values()) == {1}
    return out


def unmap_component(reader, prefix, from_ldm):
    """LDM keys under `prefix` (extras excluded) -> {diffusers name: tensor}, through the independent parser."""
    out = {}
    for key in reader.names():
        if not key.startswith(prefix) or is_extra(key):
            continue
        t = reader.tensor(key)
        res = from_ldm(key[len(prefix):])
        pairs = [(res, "same")] if isinstance(res, str) else [res] if isinstance(res, tuple) else res
        for name, how in pairs:
            assert name not in out, f"{name} twice"
            if how == "same":
                out[name] = t
            elif how == "conv1x1":
                assert t.dim() == 4 and tuple(t.shape[2:]) == (1, 1), key
                out[name] = t.reshape(t.shape[:2])
            elif how == "T":
                out[name] = t.t()
            elif how[0] == "qkv":
                assert t.shape[0] % 3 == 0, key
                out[name] = t.chunk(3, 0)[how[1]]
            else:
                raise ValueError(how)
    return out


def params(module):
    return {k: v.detach() for k, v in module.state_dict().items()}


def checkpoint_tensors(models, family, unet):
    """{LDM key: tensor} of a full checkpoint, and the per-component diffusers dicts it came from."""
    ucfg = unet_cfg_of(models, family, unet)
    which = SMALL if family == SMALL else "sd"
    comps = {"unet": (params(unet), lambda n: LD.unet_to_ldm(n, ucfg), LD.UNET_PREFIX),
             "vae": (params(models.vae(which)), lambda n: LD.vae_to_ldm(n, models.vae_cfg(which)), LD.VAE_PREFIX)}
    if is_sd1(family):
        comps["text"] = (params(models.text(family)), LD.clip_l_to_ldm, LD.CLIP_L_PREFIX)
    else:
        te = params(models.text("sd21"))
        te["text_projection.weight"] = models.text_projection()
        comps["text"] = (te, LD.open_clip_to_ldm, LD.OPEN_CLIP_PREFIX)
    out = {}
    for _, (sd, fn, prefix) in comps.items():
        part = map_component(sd, fn, prefix)
        assert not set(part) & set(out)
        out.update(part)
    extras = ldm_extras(family)
    assert not set(extras) & set(out)
    return out, extras, {k: v[0] for k, v in comps.items()}


def unet_cfg_of(models, family, unet):
    return models.unet_cfg(family, unet.conv_in.weight.shape[1])


def verify_checkpoint(path, dtype, models, family, unet, diff, extras, expect_missing=(), expect_extra=()):
    """Reads the file back: every key is a weight of a known component or a known extra; mapping the LDM keys
    back gives exactly the diffusers names, each byte-identical to what was written (in the file's dtype)."""
    r = S.Reader(path)
    try:
        ucfg = unet_cfg_of(models, family, unet)
        vcfg = models.vae_cfg(SMALL if family == SMALL else "sd")
        back = {
            "unet": unmap_component(r, LD.UNET_PREFIX, lambda k: LD.ldm_to_unet(k, ucfg)),
            "vae": unmap_component(r, LD.VAE_PREFIX, lambda k: LD.ldm_to_vae(k, vcfg)),
            "text": unmap_component(r, LD.CLIP_L_PREFIX if is_sd1(family) else LD.OPEN_CLIP_PREFIX,
                                    LD.ldm_to_clip_l if is_sd1(family) else LD.ldm_to_open_clip),
        }
        for comp, sd in diff.items():
            exp = set(sd) - set(expect_missing)
            assert set(back[comp]) == exp, (comp, sorted(set(back[comp]) ^ exp)[:5])
            for name in exp:
                a, b = S.to_bytes(sd[name], dtype), S.to_bytes(back[comp][name], dtype)
                assert a == b, f"{path}: {comp} {name} differs after the round trip"
        prefixes = (LD.UNET_PREFIX, LD.VAE_PREFIX, LD.CLIP_L_PREFIX if is_sd1(family) else LD.OPEN_CLIP_PREFIX)
        for key in r.names():
            if is_extra(key):
                t = extras[key]
                want = file_dtype_of(t, dtype)
                assert r.entries[key]["dtype"] == want and S.to_bytes(t, want) == bytes(r.raw(key)), key
            elif key not in expect_extra:
                assert key.startswith(prefixes), f"{path}: {key} belongs to no component"
        assert set(extras) <= set(r.entries), "an LDM buffer is missing"
    finally:
        r.close()


def sdxl_parts(models, refiner=False):
    """{component: (diffusers state dict, diffusers -> file name, prefix, file name -> diffusers)} of an sgm-layout
    checkpoint (sdxl-small / sdxl-refiner-small), and its non-weight tensors."""
    cfgs = sdxl_small_configs()
    ucfg = cfgs["unet_refiner" if refiner else "unet"]
    vcfg = cfgs["vae"]
    parts = {
        "unet": (params(models.sdxl("unet_refiner" if refiner else "unet")), lambda n: LD.unet_to_ldm(n, ucfg),
                 LD.UNET_PREFIX, lambda k: LD.ldm_to_unet(k, ucfg)),
        "vae": (params(models.sdxl("vae")), lambda n: LD.vae_to_ldm(n, vcfg), LD.VAE_PREFIX,
                lambda k: LD.ldm_to_vae(k, vcfg)),
        "text_2": (params(models.sdxl("text_2")), LD.open_clip_to_ldm,
                   LD.SGM_REFINER_CLIP_G_PREFIX if refiner else LD.SGM_CLIP_G_PREFIX, LD.ldm_to_open_clip),
    }
    # sgm's DiffusionEngine registers no schedule buffers and no EMA in the published files [recalled]; the
    # transformers CLIP keeps its persistent position_ids, open_clip its logit_scale (float: the file's dtype)
    extras = {parts["text_2"][2] + "logit_scale": torch.tensor(math.log(100.0), dtype=torch.float32)}
    if not refiner:
        parts["text_1"] = (params(models.sdxl("text_1")), LD.clip_l_to_ldm, LD.SGM_CLIP_L_PREFIX, LD.ldm_to_clip_l)
        extras[LD.SGM_CLIP_L_PREFIX + "text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
    return parts, extras


def check_sgm_unet(tensors, cfg):
    """What the round trip cannot see, for the sgm UNets: the transformer depth of every SpatialTransformer as the
    LDM keys show it (counted from the file's names, against the config read the LDM way: input_blocks.{1 + 3i + j}
    for down level i, middle_block, output_blocks.{3i + j} for up level i), and that the parser refuses an
    Upsample or an attention at the index a level of the other kind would have (.1.conv vs .2.conv)."""
    L = cfg["layers_per_block"]
    tl = cfg["transformer_layers_per_block"]
    tl = list(tl) if isinstance(tl, list) else [tl] * len(cfg["block_out_channels"])
    want = {"middle_block": tl[-1]}
    for i, t in enumerate(cfg["down_block_types"]):
        if t.startswith("CrossAttn"):
            want.update({f"input_blocks.{1 + i * (L + 1) + j}": tl[i] for j in range(L)})
    for i, t in enumerate(cfg["up_block_types"]):
        if t.startswith("CrossAttn"):
            want.update({f"output_blocks.{i * (L + 1) + j}": tl[::-1][i] for j in range(L + 1)})
    seen = {}
    for k in tensors:
        m = re.match(r"model\.diffusion_model\.((?:input|output)_blocks\.\d+|middle_block)\.1\.transformer_blocks\."
                     r"(\d+)\.", k)
        if m:
            seen[m[1]] = max(seen.get(m[1], 0), int(m[2]) + 1)
    assert seen == want, sorted(set(seen.items()) ^ set(want.items()))
    refused = []
    for i, t in enumerate(cfg["up_block_types"][:-1]):  # every up level but the last has an Upsample
        refused.append(f"output_blocks.{i * (L + 1) + L}.{1 if t.startswith('CrossAttn') else 2}.conv.weight")
        if not t.startswith("CrossAttn"):
            refused.append(f"output_blocks.{i * (L + 1)}.1.norm.weight")
    for i, t in enumerate(cfg["down_block_types"]):
        if not t.startswith("CrossAttn"):
            refused.append(f"input_blocks.{1 + i * (L + 1)}.1.norm.weight")
    for k in refused:
        try:
            LD.ldm_to_unet(k, cfg)
        except KeyError:
            continue
        raise AssertionError(f"ldm_to_unet accepted {k}")


def map_parts(parts, extras):
    """{file key: tensor} of all parts; no key twice across parts or with the extras."""
    out = {}
    for _, (sd, fn, prefix, _) in parts.items():
        part = map_component(sd, fn, prefix)
        assert not set(part) & set(out)
        out.update(part)
    assert not set(extras) & set(out)
    return out


def verify_parts(path, dtype, parts, extras, hashed=False):
    """verify_checkpoint for a parts dict: each part's keys, mapped back by the independent parser, give exactly
    its diffusers names with byte-identical tensors in the file's dtype; the extras are as written; every other key
    belongs to a part, and the file holds nothing else. hashed: the parts hold the sha256 of each tensor's bytes in
    the file's dtype instead of the tensor (sdxl-full, whose modules are not kept)."""
    r = S.Reader(path)
    try:
        n = 0
        for comp, (sd, _, prefix, back_fn) in parts.items():
            back = unmap_component(r, prefix, back_fn)
            assert set(back) == set(sd), (path, comp, sorted(set(back) ^ set(sd))[:5])
            for name in sd:
                got = S.to_bytes(back[name], dtype)
                if hashed:
                    assert hashlib.sha256(got).hexdigest() == sd[name], f"{path}: {comp} {name}"
                else:
                    assert S.to_bytes(sd[name], dtype) == got, f"{path}: {comp} {name}"
            del back
            n += len({k for k in r.entries if k.startswith(prefix) and not is_extra(k)})
        for key in r.names():
            if is_extra(key):
                t = extras[key]
                want = file_dtype_of(t, dtype)
                assert r.entries[key]["dtype"] == want and S.to_bytes(t, want) == bytes(r.raw(key)), key
            else:
                assert any(key.startswith(p[2]) for p in parts.values()), f"{path}: {key} belongs to no component"
        assert set(extras) <= set(r.entries) and n + len(extras) == len(r.entries), path
    finally:
        r.close()


def file_dtype_of(t, dtype):
    return dtype if t.is_floating_point() else {torch.int64: "I64", torch.int32: "I32"}[t.dtype]


def write_checkpoint(path, tensors, extras, dtype, metadata=None, drop=(), add=None):
    entries = [(k, v, dtype) for k, v in tensors.items() if k not in drop]
    entries += [(k, v, file_dtype_of(v, dtype)) for k, v in extras.items()]
    if add:
        entries += [(k, v, dtype) for k, v in add.items()]
    return S.write(path, entries, metadata)


# ------------------------------------------------------------------------------------------ SDXL at full size
def sdxl_full_components():
    """The four components of sdxl-full in the file's data order (text 1, text 2, VAE, UNet: the sorted order of
    their prefixes), each built exactly as tools/test-models' exporters build the full-scale `sdxl` layout's
    (exporters.sdxl_text_job, sdxl_unet_job, vae_job: the same configs and seeds), so the file holds that export's
    weights. Each entry: build (a fresh module each call), diffusers -> file names, prefix, file -> diffusers names,
    and the export folders whose initializers hold it (the VAE is split into decoder and encoder graphs)."""
    te = {w: A.sdxl_text_config(w, "full") for w in (1, 2)}
    ucfg = A.sdxl_unet_config("sdxl", "full")
    vcfg = A.vae_config("full")
    return {
        "text_1": dict(build=lambda: A.build_sdxl_text(te[1], A.seed_of("sdxl", "text_encoder_1", "full")),
                       to_ldm=LD.clip_l_to_ldm, prefix=LD.SGM_CLIP_L_PREFIX, from_ldm=LD.ldm_to_clip_l,
                       export=("text_encoder",), config=te[1]),
        "text_2": dict(build=lambda: A.build_sdxl_text(te[2], A.seed_of("sdxl", "text_encoder_2", "full")),
                       to_ldm=LD.open_clip_to_ldm, prefix=LD.SGM_CLIP_G_PREFIX, from_ldm=LD.ldm_to_open_clip,
                       export=("text_encoder_2",), config=te[2]),
        "vae": dict(build=lambda: A.build_vae(vcfg, A.seed_of("sd", "vae", "full")),
                    to_ldm=lambda n: LD.vae_to_ldm(n, vcfg), prefix=LD.VAE_PREFIX,
                    from_ldm=lambda k: LD.ldm_to_vae(k, vcfg), export=("vae_decoder", "vae_encoder"), config=vcfg),
        "unet": dict(build=lambda: A.build_sdxl_unet(ucfg, A.seed_of("sdxl", "unet", "full")),
                     to_ldm=lambda n: LD.unet_to_ldm(n, ucfg), prefix=LD.UNET_PREFIX,
                     from_ldm=lambda k: LD.ldm_to_unet(k, ucfg), export=("unet",), config=ucfg),
    }


# What torch's exporter makes of a parameter it constant-folds, found by the node that reads it (`/<module path>/Op`):
# a Linear weight becomes MatMul's operand, transposed; a GroupNorm's weight and bias the operands of the Mul and Add
# after its InstanceNormalization, with unit dims added ([C, 1, 1]); either under a new name (`onnx::MatMul_N`).
FOLDED_OPERANDS = {"MatMul": ("weight", "T"), "Mul": ("weight", "same"), "Add": ("bias", "same")}


class ExportWeights:
    """The float32 initializers of one or more ONNX graphs of an export, read one tensor at a time (external data
    by offset, so the 10 GB UNet file never sits in this process's memory): by name, and renamed ones by the
    parameter their node's scope names (FOLDED_OPERANDS)."""

    def __init__(self, folders):
        import onnx
        from onnx.external_data_helper import ExternalDataInfo, uses_external_data
        self._onnx, self._info, self._external = onnx, ExternalDataInfo, uses_external_data
        self.by_name, self.folded = {}, {}
        for folder in folders:
            # the protobuf alone: inline tensors (the smaller graphs keep theirs inside) come with it
            m = onnx.load(os.path.join(folder, "model.onnx"), load_external_data=False)
            inits = {t.name: (folder, t) for t in m.graph.initializer}
            for name, entry in inits.items():
                if "::" not in name:
                    self.by_name[name] = entry
            for node in m.graph.node:
                kind = FOLDED_OPERANDS.get(node.op_type)
                operand = next((i for i in node.input if "::" in i and i in inits), None)
                if kind and operand and node.name.endswith("/" + node.op_type):
                    module = node.name[1:-len(node.op_type) - 1].replace("/", ".")
                    self.folded[f"{module}.{kind[0]}"] = (kind[1], *inits[operand])

    def _bytes(self, folder, t):
        assert t.data_type == self._onnx.TensorProto.FLOAT, f"{t.name}: not float32"
        if not self._external(t):
            return t.raw_data if t.raw_data else self._onnx.numpy_helper.to_array(t).astype("<f4").tobytes()
        info = self._info(t)
        with open(os.path.join(folder, info.location), "rb") as f:
            f.seek(int(info.offset or 0))
            return f.read(int(info.length))

    def check(self, sd):
        """Every parameter of `sd` against its initializer, byte for byte in float32 (a folded one in the form its
        node reads: transposed for MatMul, unit dims aside for Mul / Add). Returns {by_name, folded, values}; raises
        on a difference or on a parameter the export does not hold."""
        by_name = folded = values = 0
        missing = []
        for name, p in sd.items():
            w = p.detach().float().contiguous()
            if name in self.by_name:
                folder, t = self.by_name[name]
                assert list(t.dims) == list(w.shape), f"{name}: export shape {list(t.dims)}, module {list(w.shape)}"
                assert self._bytes(folder, t) == w.numpy().tobytes(), f"{name} differs from the export's initializer"
                by_name += 1
            elif name in self.folded:
                how, folder, t = self.folded[name]
                if how == "T":
                    assert w.dim() == 2 and list(t.dims) == list(w.shape[::-1]), f"{name}: operand {list(t.dims)}"
                    w = w.t().contiguous()
                else:
                    assert [d for d in t.dims if d != 1] == [d for d in w.shape if d != 1], f"{name}: {list(t.dims)}"
                assert self._bytes(folder, t) == w.numpy().tobytes(), f"{name} differs from the export's operand"
                folded += 1
            else:
                missing.append(name)
                continue
            values += w.numel()
        if missing:
            raise AssertionError(f"{len(missing)} parameters have no initializer in the export (e.g. {missing[:3]})")
        return {"by_name": by_name, "folded": folded, "values": values}


def release_memory():
    """Frees what the last component left: Python's cycles, then the heap pages glibc keeps after a free (malloc_trim).
    torch allocates tensors below glibc's mmap threshold (which rises to 32 MB once larger blocks have been freed)
    from the heap, and a heap with holes is not given back by free() alone: without the trim the next component's
    build lands on top of the last one's freed pages."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def write_sdxl_full(path, export_dir, metadata):
    """sdxl-full in two passes over the components, so that at most one of them is in memory (the UNet alone is
    10.3 GB in float32): the first builds each, checks it against the export's initializers, maps it to file names
    and keeps only the names, shapes and a sha256 of each tensor's float16 bytes; the header can then be written,
    and the second pass builds each component again (the same seeds: the same values) and streams its tensors into
    the file in data order. Reading the file back through the independent parser then compares every tensor with the
    first pass's digest, which also proves that the second build gave the same values."""
    comps = sdxl_full_components()
    extras = {LD.SGM_CLIP_G_PREFIX + "logit_scale": torch.tensor(math.log(100.0), dtype=torch.float32),
              LD.SGM_CLIP_L_PREFIX + "text_model.embeddings.position_ids": torch.arange(77, dtype=torch.int64)[None]}
    specs, owner, digests, checked, params_of = [], {}, {}, {}, {}
    for part, c in comps.items():
        t0 = time.time()
        module = c["build"]()
        sd = params(module)
        params_of[part] = sum(v.numel() for v in sd.values())
        if export_dir:
            checked[part] = ExportWeights([os.path.join(export_dir, e) for e in c["export"]]).check(sd)
        tensors = map_component(sd, c["to_ldm"], c["prefix"])
        if part == "unet":
            check_sgm_unet(tensors, c["config"])
        for key, t in tensors.items():
            specs.append((key, list(t.shape), "F16"))
            owner[key] = part
        digests[part] = {n: hashlib.sha256(S.to_bytes(v, "F16")).hexdigest() for n, v in sd.items()}
        del module, sd, tensors, t
        release_memory()
        log(f"  {part}: {params_of[part] / 1e6:.1f} M parameters built, mapped"
            + (f", every tensor equal to the export's ({checked[part]['by_name']} by name, {checked[part]['folded']} "
               f"folded into a MatMul / Mul / Add)" if part in checked else "") + f" in {time.time() - t0:.1f} s")
    assert not set(extras) & set(owner)
    specs += [(k, list(v.shape), file_dtype_of(v, "F16")) for k, v in extras.items()]
    t0 = time.time()
    with S.Writer(path, specs, metadata) as w:
        current, pending, written = None, {}, []
        for key in w.order:
            if key in extras:
                w.put(key, extras[key])
                continue
            part = owner[key]
            if part != current:
                # the data order is sorted by name and each component has its own prefix: one run per component
                assert not pending and part not in written, f"{part}'s tensors are not contiguous in the data order"
                module = comps[part]["build"]()
                pending = map_component(params(module), comps[part]["to_ldm"], comps[part]["prefix"])
                current = part
            w.put(key, pending.pop(key))
            if not pending:
                written.append(part)
                del module
                release_memory()
    log(f"  written in {time.time() - t0:.1f} s (components built again, streamed in data order)")
    t0 = time.time()
    parts = {p: (digests[p], c["to_ldm"], c["prefix"], c["from_ldm"]) for p, c in comps.items()}
    verify_parts(path, "F16", parts, extras, hashed=True)
    log(f"  read back in {time.time() - t0:.1f} s: every tensor equal to the first pass's")
    return {"parameters": params_of, "export": os.path.relpath(export_dir, ROOT) if export_dir else None,
            "export_check": checked or None}


# ------------------------------------------------------------------------------------------ references
class Refs:
    def __init__(self, folder, scale, seed):
        self.dir = os.path.join(folder, "reference")
        os.makedirs(self.dir, exist_ok=True)
        self.scale, self.seed = scale, seed
        self.tensors, self.calls = {}, []

    def tensor(self, name, t, what, **meta):
        t = t.detach() if torch.is_tensor(t) else torch.tensor(t)
        e = {"shape": list(t.shape)}
        if t.is_floating_point():
            data = t.float().contiguous().numpy().astype("<f4")
            fname = name + ".bin"
            with open(os.path.join(self.dir, fname), "wb") as f:
                f.write(data.tobytes())
            e.update(dtype="float32", file=fname)
            if data.size <= 16:
                e["values"] = [float(x) for x in data.reshape(-1)]
        else:
            e.update(dtype=str(t.dtype).replace("torch.", ""), values=[int(x) for x in t.reshape(-1)])
        e["what"] = what
        e.update(meta)
        self.tensors[name] = e
        return name

    def call(self, **c):
        self.calls.append(c)

    def save(self, extra):
        doc = {"format": FORMAT, "scale": self.scale, "seed": self.seed, "byte_order": "little",
               "file_dtype": "float32",
               "computed_in": "float32 PyTorch, tools/tiny-sd/modules.py (diffusers/transformers names), weights as "
                              "stored in each file (float16/bfloat16 files: the rounded values, upcast)",
               "tolerance": {"abs": 1e-4, "rel": 1e-4}}
        doc.update(extra)
        doc.update(tensors=self.tensors, calls=self.calls)
        with open(os.path.join(self.dir, "index.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=2) + "\n")


class Inputs:
    """Seeded reference inputs, each written once to reference/ (the seeds are in index.json too)."""

    def __init__(self, refs, scale, models):
        self.refs, self.scale, self.models = refs, scale, models
        self.h, self.w = LATENT_HW[scale]

    def randn(self, name, shape, what, uniform=False):
        if name not in self.refs.tensors:
            g = gen("input", name, self.scale)
            t = torch.rand(*shape, generator=g) * 2 - 1 if uniform else torch.randn(*shape, generator=g)
            self.refs.tensor(name, t, what, seed=A.seed_of("test-checkpoints", "input", name, self.scale),
                             generator="torch.Generator().manual_seed(seed); "
                                       + ("torch.rand(shape) * 2 - 1" if uniform else "torch.randn(shape)"))
        return self.load(name)

    def load(self, name):
        e = self.refs.tensors[name]
        if "file" in e:
            import numpy as np
            data = np.fromfile(os.path.join(self.refs.dir, e["file"]), dtype="<f4")
            return torch.from_numpy(data.copy()).reshape(e["shape"])
        return torch.tensor(e["values"], dtype=torch.int64).reshape(e["shape"])

    def ids(self, family):
        name = f"text.input_ids.{family}"
        if name not in self.refs.tensors:
            ids = PROMPT_IDS["full" if family == SMALL else self.scale]
            bos, eos = ids[0], ids[-1]
            # SD-1.x (CLIP tokenizer, ComfyUI's SD1Tokenizer) pads with <|endoftext|>, SD-2.x (OpenCLIP) with id 0
            pad = eos if is_sd1(family) else 0
            rows = [[bos, eos] + [pad] * 75, ids + [pad] * (77 - len(ids))]
            if family == SMALL:  # the full vocabulary: the ids the real tokenizer gives, at every scale
                bpe = clip_bpe.ClipBpe(*clip_bpe.load_clip(CLIP_TOKENIZER))
                assert [bpe.encode(""), bpe.encode(PROMPT)] == rows, "clip_bpe disagrees with PROMPT_IDS['full']"
            self.refs.tensor(name, torch.tensor(rows, dtype=torch.int64),
                             f'[2, 77] ids of ("", "{PROMPT}"), BOS/EOS {bos}/{eos}, padded with {pad}',
                             texts=["", PROMPT])
        return self.load(name)

    def ids_sdxl_g(self):
        """SDXL's second tokenizer: the same ids as sd15-small's (full vocabulary) but padded with 0 ("!") after
        the EOS (ComfyUI's SDXL clip_g tokenizer: pad_with_end False; diffusers' tokenizer_2: pad_token "!")."""
        name = "text.input_ids.sdxl-g"
        if name not in self.refs.tensors:
            rows = self.ids(SMALL).tolist()
            eos = max(rows[1])  # <|endoftext|>, the highest id
            rows = [r[:r.index(eos) + 1] + [0] * (76 - r.index(eos)) for r in rows]
            self.refs.tensor(name, torch.tensor(rows, dtype=torch.int64),
                             f'[2, 77] ids of ("", "{PROMPT}"), BOS/EOS 49406/{eos}, padded with 0 after the EOS '
                             f'(SDXL text encoder 2)', texts=["", PROMPT])
        return self.load(name)

    def sdxl_unet(self, tag, arch, context):
        """Inputs of an SDXL UNet: the shared sample and timestep, encoder_hidden_states [2, 77, context] and the
        pooled text embedding [2, 64] (seeded normal, not text outputs), time ids [2, 6 | 5] (SDXL_TIME_IDS)."""
        sample, t = self.sample(4), torch.tensor(TIMESTEP)
        ehs = self.randn(f"unet.encoder_hidden_states.{tag}", (2, 77, context),
                         "UNet encoder_hidden_states [2, 77, context] (seeded normal, not a text encoder output)")
        te = self.randn("unet.text_embeds.sdxl-small", (2, 64), "SDXL UNet text_embeds [2, 64] (pooled, projected "
                        "text embedding of text encoder 2; seeded normal, not a text encoder output)")
        name = f"unet.time_ids.{arch}"
        if name not in self.refs.tensors:
            ids = SDXL_TIME_IDS[arch]
            self.refs.tensor(name, torch.tensor(ids, dtype=torch.float32),
                             "SDXL UNet time_ids: (original height, width, crop top, left, " +
                             ("aesthetic score)" if arch == "sdxl-refiner" else "target height, width)") +
                             " per batch item")
        return sample, t, ehs, te, self.load(name)

    def sample(self, in_channels):
        sample = self.randn(f"unet.sample.c{in_channels}", (2, in_channels, self.h, self.w),
                            f"UNet sample [2, {in_channels}, h, w] (latent space, unscaled noise-like)")
        if "unet.timestep" not in self.refs.tensors:
            self.refs.tensor("unet.timestep", torch.tensor(TIMESTEP), "timestep, a 0-d float: both batch items")
        return sample

    def unet(self, family, in_channels):
        cfg = self.models.unet_cfg(family, in_channels)
        sample = self.sample(in_channels)
        ehs = self.randn(f"unet.encoder_hidden_states.{family}", (2, 77, cfg["cross_attention_dim"]),
                         "UNet encoder_hidden_states [2, 77, context] (seeded normal, not a text encoder output)")
        return sample, torch.tensor(TIMESTEP), ehs

    def vae(self):
        latent = self.randn("vae.latent", (1, 4, self.h, self.w), "latent for the VAE decoder, unscaled (what "
                            "decode() takes after the 1/0.18215 scaling)")
        image = self.randn("vae.image", (1, 3, 8 * self.h, 8 * self.w), "image in [-1, 1] for the VAE encoder",
                           uniform=True)
        return latent, image


def unet_names(sample, ehs):
    return {"sample": sample, "timestep": "unet.timestep", "encoder_hidden_states": ehs}


def ref_text_sd15(R, I, text, tag, checkpoint, what, loras=None, hidden=True, family="sd15"):
    ids = I.ids(family)
    with torch.no_grad():
        last, pooled = text(ids)
        states, _ = A.text_hidden_states(text, ids[1:2])
        skip2 = text.text_model.final_layer_norm(states[-2])
    outs = {"last_hidden_state": R.tensor(f"{tag}.text.last_hidden_state", last,
                                          f"{what}: last_hidden_state (final layer norm) of the pair [2, 77, D]"),
            "pooler_output": R.tensor(f"{tag}.text.pooler_output", pooled,
                                      f"{what}: final-normed state at the EOS (argmax id) [2, D]")}
    R.call(name=f"{tag}.text", checkpoint=checkpoint, component="text_encoder", loras=loras or [],
           inputs={"input_ids": f"text.input_ids.{family}"}, outputs=outs)
    inter = {"clip_skip_2": R.tensor(f"{tag}.text.clip_skip_2", skip2,
                                     f"{what}: final_layer_norm(hidden_states[11]) of the prompt (ComfyUI clip skip -2)")}
    if hidden:
        for k, s in enumerate(states):
            inter[f"hidden_states.{k}"] = R.tensor(
                f"{tag}.text.hidden_states.{k}", s,
                f"{what}: prompt alone [1, 77, D], " + ("token + position embeddings" if k == 0 else
                                                         f"output of encoder layer {k - 1} (before the final norm)"))
    R.call(name=f"{tag}.text.prompt", checkpoint=checkpoint, component="text_encoder", loras=loras or [],
           inputs={"input_ids": f"text.input_ids.{family}[1:2]"}, outputs=inter,
           note=f"row 1 of text.input_ids.{family} alone")


def ref_text_sd21(R, I, text, proj, checkpoint):
    ids = I.ids("sd21")
    tm = text.text_model
    with torch.no_grad():
        pair_states, _ = A.text_hidden_states(text, ids)
        pen = tm.final_layer_norm(pair_states[-2])
        last = tm.final_layer_norm(pair_states[-1])
        eos = ids.argmax(dim=-1)
        embeds = last[torch.arange(2), eos] @ proj.t()
        states, _ = A.text_hidden_states(text, ids[1:2])
    outs = {
        "penultimate": R.tensor("sd21v.text.penultimate", pen,
                                "final_norm(hidden_states[23]) of the pair [2, 77, D]: SD-2's conditioning (ComfyUI "
                                "layer 'penultimate'; diffusers' 23-layer CLIPTextModel last_hidden_state)"),
        "last_hidden_state": R.tensor("sd21v.text.last_hidden_state", last,
                                      "final_norm(hidden_states[24]) of the pair: all 24 resblocks (not SD-2's input)"),
        "text_embeds": R.tensor("sd21v.text.text_embeds", embeds,
                                "OpenCLIP encode_text: last_hidden_state at the EOS @ text_projection [2, P]"),
    }
    R.call(name="sd21v.text", checkpoint=checkpoint, component="text_encoder", loras=[],
           inputs={"input_ids": "text.input_ids.sd21"}, outputs=outs)
    inter = {}
    for k, s in enumerate(states):
        inter[f"hidden_states.{k}"] = R.tensor(
            f"sd21v.text.hidden_states.{k}", s,
            "prompt alone [1, 77, D], " + ("token + position embeddings" if k == 0 else
                                           f"output of resblock {k - 1} (before ln_final)"))
    R.call(name="sd21v.text.prompt", checkpoint=checkpoint, component="text_encoder", loras=[],
           inputs={"input_ids": "text.input_ids.sd21[1:2]"}, outputs=inter, note="row 1 of text.input_ids.sd21 alone")


def ref_text_sdxl(R, I, text, which, checkpoint, what):
    """SDXL's text encoders on their own ids: 1 (CLIP-L-like, text.input_ids.sd15-small, component text_encoder) or
    2 (bigG-like, text.input_ids.sdxl-g, text_encoder_2). SDXL conditions on the penultimate layer's output RAW
    (no final norm, unlike SD-2), te2 also on the pooled, projected final state (text_embeds)."""
    tag = f"{SDXL_SMALL}.text_{'l' if which == 1 else 'g'}"
    ids_name = "text.input_ids.sd15-small" if which == 1 else "text.input_ids.sdxl-g"
    ids = I.ids(SMALL) if which == 1 else I.ids_sdxl_g()
    tm = text.text_model
    n = len(tm.encoder.layers)
    with torch.no_grad():
        pair, last = A.text_hidden_states(text, ids)
        pooled = last[torch.arange(2), ids.argmax(dim=-1)]
        if which == 1:
            l2, p2 = text(ids)
        else:
            e2, l2 = text(ids)
            p2 = pooled
            embeds = text.text_projection(pooled)
            assert torch.equal(e2, embeds)
        assert torch.equal(l2, last) and torch.equal(p2, pooled)
        states, _ = A.text_hidden_states(text, ids[1:2])
    outs = {"penultimate": R.tensor(f"{tag}.penultimate", pair[-2],
                                    f"{what}: hidden_states[{n - 1}] of the pair, RAW (no final norm) [2, 77, D]: "
                                    "SDXL's conditioning from this encoder"),
            "last_hidden_state": R.tensor(f"{tag}.last_hidden_state", last,
                                          f"{what}: final_layer_norm(hidden_states[{n}]) of the pair [2, 77, D]")}
    if which == 1:
        outs["pooler_output"] = R.tensor(f"{tag}.pooler_output", pooled,
                                         f"{what}: last_hidden_state at the EOS (argmax id) [2, D] (unused by SDXL)")
    else:
        outs["text_embeds"] = R.tensor(f"{tag}.text_embeds", embeds,
                                       f"{what}: last_hidden_state at the EOS (argmax id) @ text_projection [2, P]: "
                                       "SDXL's pooled conditioning (the UNet's text_embeds)")
    comp = "text_encoder" if which == 1 else "text_encoder_2"
    R.call(name=tag, checkpoint=checkpoint, component=comp, loras=[], inputs={"input_ids": ids_name}, outputs=outs)
    inter = {}
    for k, st in enumerate(states):
        inter[f"hidden_states.{k}"] = R.tensor(
            f"{tag}.hidden_states.{k}", st,
            f"{what}: prompt alone [1, 77, D], " + ("token + position embeddings" if k == 0 else
                                                     f"output of layer {k - 1} (before the final norm)"))
    R.call(name=f"{tag}.prompt", checkpoint=checkpoint, component=comp, loras=[],
           inputs={"input_ids": f"{ids_name}[1:2]"}, outputs=inter, note=f"row 1 of {ids_name} alone")


def ref_unet_sdxl(R, I, unet, tag, arch, checkpoint, what):
    context = unet.down_blocks[1].attentions[0].transformer_blocks[0].attn2.to_k.weight.shape[1]
    sample, t, ehs, te, tids = I.sdxl_unet(tag, arch, context)
    with torch.no_grad():
        out = unet(sample, t, ehs, te, tids)
    name = R.tensor(f"{tag}.unet.out", out, f"{what}: UNet output [2, 4, h, w]")
    inputs = unet_names("unet.sample.c4", f"unet.encoder_hidden_states.{tag}")
    inputs.update(text_embeds="unet.text_embeds.sdxl-small", time_ids=f"unet.time_ids.{arch}")
    R.call(name=f"{tag}.unet", checkpoint=checkpoint, component="unet", loras=[], inputs=inputs,
           outputs={"out": name})


def ref_unet(R, I, unet, family, tag, checkpoint, what, loras=None):
    cin = unet.conv_in.weight.shape[1]
    sample, t, ehs = I.unet(family, cin)
    with torch.no_grad():
        out = unet(sample, t, ehs)
    name = R.tensor(f"{tag}.unet.out", out, f"{what}: UNet output [2, 4, h, w]")
    R.call(name=f"{tag}.unet", checkpoint=checkpoint, component="unet", loras=loras or [],
           inputs=unet_names(f"unet.sample.c{cin}", f"unet.encoder_hidden_states.{family}"), outputs={"out": name})


def ref_vae(R, I, vae, tag, checkpoint, what):
    latent, image = I.vae()
    with torch.no_grad():
        dec = vae.decode(latent)
        par = vae.encode_params(image)
    R.call(name=f"{tag}.vae_decode", checkpoint=checkpoint, component="vae_decoder", loras=[],
           inputs={"latent": "vae.latent"},
           outputs={"image": R.tensor(f"{tag}.vae.decoded", dec, f"{what}: decoder(post_quant_conv(latent))")})
    R.call(name=f"{tag}.vae_encode", checkpoint=checkpoint, component="vae_encoder", loras=[],
           inputs={"image": "vae.image"},
           outputs={"mean": R.tensor(f"{tag}.vae.encoded_mean", par[:, :4], f"{what}: encoder mean [1, 4, h, w]"),
                    "parameters": R.tensor(f"{tag}.vae.encoded_parameters", par,
                                           f"{what}: quant_conv(encoder(image)) = mean, logvar [1, 8, h, w]")})


def rounded(module, dtype):
    m = copy.deepcopy(module)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.to(dtype).float())
    return m


# ------------------------------------------------------------------------------------------ main
def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 24)
            if not b:
                return h.hexdigest()
            h.update(b)


def describe(path):
    if path.endswith(".ckpt"):
        return {"bytes": os.path.getsize(path), "sha256": sha256(path)}
    r = S.Reader(path)
    try:
        dt = Counter(e["dtype"] for e in r.entries.values())
        groups = Counter()
        for k in r.entries:
            g = ("extra" if is_extra(k) else "unet" if k.startswith(LD.UNET_PREFIX) else
                 "vae" if k.startswith((LD.VAE_PREFIX, "encoder.", "decoder.", "quant_conv.", "post_quant_conv."))
                 else "text" if k.startswith(("cond_stage_model.", "conditioner.", "text_model.", "text_projection."))
                 else "lora_unet" if k.startswith("lora_unet_") else "lora_te" if k.startswith("lora_te_") else "other")
            groups[g] += 1
        return {"keys": len(r.entries), "dtypes": dict(sorted(dt.items())), "groups": dict(sorted(groups.items())),
                "metadata": r.metadata, "bytes": os.path.getsize(path), "sha256": sha256(path)}
    finally:
        r.close()


# The config values the manifest records for the SDXL items (what a reader of the files cannot see in them).
SDXL_MANIFEST_UNET_KEYS = ("block_out_channels", "down_block_types", "up_block_types", "transformer_layers_per_block",
                           "attention_head_dim", "cross_attention_dim", "norm_num_groups", "use_linear_projection",
                           "addition_embed_type", "addition_time_embed_dim", "projection_class_embeddings_input_dim",
                           "layers_per_block", "sample_size")
SDXL_MANIFEST_TEXT_KEYS = ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "hidden_act",
                           "projection_dim", "vocab_size", "max_position_embeddings")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=False)
    ap.add_argument("--scale", choices=["ci", "full"], default="ci")
    ap.add_argument("--only", default="", help="comma-separated item names (see --list)")
    ap.add_argument("--seed", type=int, default=0, help="mixed into every seed (arch.seed_of's TEST_MODELS_SEED)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--sdxl-export", default=SDXL_EXPORT,
                    help=f"{SDXL_FULL}: tools/test-models' full-scale sdxl folder whose weights it holds, checked "
                         "tensor by tensor when present (default: %(default)s)")
    args = ap.parse_args()
    if args.list:
        for k, (f, what) in ITEMS.items():
            print(f"{k:18s} {f:30s} {what}")
        return
    if not args.out:
        ap.error("--out is required")
    os.environ["TEST_MODELS_SEED"] = str(args.seed)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    want = [w for w in args.only.split(",") if w] or [k for k in ITEMS if args.scale == "full" or k not in FULL_ONLY]
    by_file = {f: k for k, (f, _) in ITEMS.items()}
    want = [by_file.get(w, w) for w in want]
    for w in want:
        if w not in ITEMS:
            ap.error(f"unknown item {w} (see --list)")
        if w in FULL_ONLY and args.scale != "full":
            ap.error(f"{w} is SDXL at its published widths (a 6.9 GB file holding tools/test-models' full-scale "
                     "sdxl export's weights); CI scale has no such export: use --scale full")
    t_all = time.time()
    out = args.out
    os.makedirs(out, exist_ok=True)
    scale = args.scale
    models = Models(scale)
    R = Refs(out, scale, args.seed)
    old_index = os.path.join(R.dir, "index.json")
    if os.path.exists(old_index):
        os.remove(old_index)
    I = Inputs(R, scale, models)
    manifest = {"format": "gategraph-test-checkpoints/manifest/1", "scale": scale, "seed": args.seed, "files": {}}
    extra_doc = {"prompt": PROMPT, "lora": {}, "v_prediction": None}

    def done(item, t0, **info):
        f = ITEMS[item][0]
        d = describe(os.path.join(out, f))
        d.update(info, what=ITEMS[item][1])
        manifest["files"][f] = d
        keys = f"{d['keys']:5d} keys " if "keys" in d else " " * 11
        dts = " ".join(f"{k}:{v}" for k, v in d.get("dtypes", {}).items())
        log(f"{f:30s} {keys}{d['bytes'] / 1e6:9.2f} MB {time.time() - t0:6.1f} s  {dts}")

    sd15_cache = {}

    def sd15_tensors():
        if not sd15_cache:
            sd15_cache["v"] = checkpoint_tensors(models, "sd15", models.unet("sd15"))
        return sd15_cache["v"]

    ck_meta = {"format": "pt"}
    for dtype_item, dtype in (("sd15", "F32"), ("sd15-fp16", "F16"), ("sd15-bf16", "BF16")):
        if dtype_item not in want:
            continue
        t0 = time.time()
        tensors, extras, diff = sd15_tensors()
        path = os.path.join(out, ITEMS[dtype_item][0])
        write_checkpoint(path, tensors, extras, dtype, ck_meta)
        verify_checkpoint(path, dtype, models, "sd15", models.unet("sd15"), diff, extras)
        unet, text, vae = models.unet("sd15"), models.text("sd15"), models.vae("sd")
        if dtype != "F32":
            td = torch.float16 if dtype == "F16" else torch.bfloat16
            unet, text, vae = rounded(unet, td), rounded(text, td), rounded(vae, td)
        what = f"{dtype_item} ({dtype} weights)"
        ref_text_sd15(R, I, text, dtype_item, ITEMS[dtype_item][0], what, hidden=(dtype == "F32"))
        ref_unet(R, I, unet, "sd15", dtype_item, ITEMS[dtype_item][0], what)
        ref_vae(R, I, vae, dtype_item, ITEMS[dtype_item][0], what)
        done(dtype_item, t0)

    if "sd21v" in want:
        t0 = time.time()
        unet = models.unet("sd21")
        tensors, extras, diff = checkpoint_tensors(models, "sd21", unet)
        path = os.path.join(out, ITEMS["sd21v"][0])
        write_checkpoint(path, tensors, extras, "F32", ck_meta)
        verify_checkpoint(path, "F32", models, "sd21", unet, diff, extras)
        stat = float(tensors[LD.UNET_PREFIX + V_PRED_KEY].std(unbiased=False))
        assert stat > V_PRED_THRESHOLD
        extra_doc["v_prediction"] = dict(models.v_pred_fix, key=LD.UNET_PREFIX + V_PRED_KEY, threshold=V_PRED_THRESHOLD,
                                         rule="ComfyUI supported_models.SD20.model_type: in_channels 4 and "
                                              "torch.std(key, unbiased=False) > 0.09 -> V_PREDICTION")
        ref_text_sd21(R, I, models.text("sd21"), models.text_projection(), ITEMS["sd21v"][0])
        ref_unet(R, I, unet, "sd21", "sd21v", ITEMS["sd21v"][0], "sd21v")
        ref_vae(R, I, models.vae("sd"), "sd21v", ITEMS["sd21v"][0], "sd21v (the same VAE weights as sd15)")
        done("sd21v", t0, v_prediction_statistic=stat)

    if "sd15-inpaint" in want:
        t0 = time.time()
        unet = models.unet_inpaint()
        tensors, extras, diff = checkpoint_tensors(models, "sd15", unet)
        path = os.path.join(out, ITEMS["sd15-inpaint"][0])
        write_checkpoint(path, tensors, extras, "F32", ck_meta)
        verify_checkpoint(path, "F32", models, "sd15", unet, diff, extras)
        ref_unet(R, I, unet, "sd15", "sd15-inpaint", ITEMS["sd15-inpaint"][0],
                 "sd15-inpaint (text encoder and VAE: sd15's weights, see sd15.*)")
        done("sd15-inpaint", t0)

    if "vae-ft" in want:
        t0 = time.time()
        vae = models.vae("ft")
        sd = params(vae)
        tensors = map_component(sd, lambda n: LD.vae_to_ldm(n, models.vae_cfg()), "")
        # recalled from ComfyUI's "Leftover VAE keys" log line for vae-ft-mse-840000-ema-pruned: the LitEma buffers
        extras = {"model_ema.decay": torch.tensor(0.9999, dtype=torch.float32),
                  "model_ema.num_updates": torch.tensor(0, dtype=torch.int32)}
        path = os.path.join(out, ITEMS["vae-ft"][0])
        write_checkpoint(path, tensors, extras, "F32", None)
        r = S.Reader(path)
        try:
            back = unmap_component(r, "", lambda k: LD.ldm_to_vae(k, models.vae_cfg()))
            assert set(back) == set(sd)
            assert all(S.to_bytes(sd[k], "F32") == S.to_bytes(back[k], "F32") for k in sd)
            assert len(r.entries) == len(sd) + len(extras)
        finally:
            r.close()
        ref_vae(R, I, vae, "vae-ft", ITEMS["vae-ft"][0], "vae-ft")
        done("vae-ft", t0)

    if "lora-kohya" in want:
        t0 = time.time()
        unet, text = models.unet("sd15"), models.text("sd15")
        lt, mods = K.make(unet, text, gen("lora-kohya", scale))
        # kohya saves every tensor in the save precision (fp16 here), alpha included
        lt = {k: v.half() for k, v in lt.items()}
        path = os.path.join(out, ITEMS["lora-kohya"][0])
        meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(K.RANK), "ss_network_alpha": str(K.ALPHA),
                "ss_network_args": json.dumps({"conv_dim": str(K.RANK), "conv_alpha": str(K.ALPHA)}),
                "ss_base_model_version": "sd_v1", "ss_v2": "False"}
        S.write(path, [(k, v, "F16") for k, v in lt.items()], meta)
        r = S.Reader(path)
        try:
            assert set(r.names()) == set(lt) and all(bytes(r.raw(k)) == S.to_bytes(v, "F16") for k, v in lt.items())
        finally:
            r.close()
        n_unet = sum(1 for m in mods if m[1] == "unet")
        extra_doc["lora"] = {
            "file": ITEMS["lora-kohya"][0], "rank": K.RANK, "alpha": K.ALPHA, "dtype": "F16",
            "modules": len(mods), "unet_modules": n_unet, "text_modules": len(mods) - n_unet,
            "conv3x3_modules": ["lora_unet_" + p.replace(".", "_") for p in K.UNET_CONV3X3],
            "module_without_alpha": K.NO_ALPHA,
            "merge": "W + strength * (alpha / rank) * (up.flatten(1) @ down.flatten(1)).reshape(W.shape); alpha/rank "
                     "= 1 when .alpha is absent; LoRA values are the file's float16 ones, upcast",
            "strength_model": LORA_STRENGTH_MODEL, "strength_clip": LORA_STRENGTH_CLIP,
            "stacked_strength_model": LORA_STACKED_MODEL,
            "targets": [{"key": m[0], "module": m[2], "component": m[1],
                         "kind": "conv" if isinstance(m[3], torch.nn.Conv2d) else "linear",
                         "weight_shape": list(m[3].weight.shape)} for m in mods],
        }
        lf = [{"file": ITEMS["lora-kohya"][0], "strength_model": LORA_STRENGTH_MODEL,
               "strength_clip": LORA_STRENGTH_CLIP}]
        saved = K.snapshot(mods, "unet")
        K.apply(lt, mods, "unet", LORA_STRENGTH_MODEL)
        ref_unet(R, I, unet, "sd15", "lora", "sd15.safetensors", f"sd15 + LoRA at model strength {LORA_STRENGTH_MODEL}",
                 loras=lf)
        K.apply(lt, mods, "unet", LORA_STACKED_MODEL)
        ref_unet(R, I, unet, "sd15", "lora-stacked", "sd15.safetensors",
                 f"sd15 + LoRA at {LORA_STRENGTH_MODEL}, then the same LoRA again at {LORA_STACKED_MODEL}",
                 loras=lf + [{"file": ITEMS["lora-kohya"][0], "strength_model": LORA_STACKED_MODEL,
                              "strength_clip": 0.0}])
        K.restore(mods, "unet", saved)
        saved = K.snapshot(mods, "text")
        K.apply(lt, mods, "text", LORA_STRENGTH_CLIP)
        ref_text_sd15(R, I, text, "lora", "sd15.safetensors", f"sd15 + LoRA at clip strength {LORA_STRENGTH_CLIP}",
                      loras=lf, hidden=False)
        K.restore(mods, "text", saved)
        done("lora-kohya", t0, modules=len(mods))

    if "sd15-missing-key" in want:
        t0 = time.time()
        tensors, extras, diff = sd15_tensors()
        assert MISSING_KEY in tensors
        path = os.path.join(out, ITEMS["sd15-missing-key"][0])
        write_checkpoint(path, tensors, extras, "F32", ck_meta, drop=(MISSING_KEY,))
        name = LD.ldm_to_unet(MISSING_KEY[len(LD.UNET_PREFIX):], models.unet_cfg("sd15"))
        verify_checkpoint(path, "F32", models, "sd15", models.unet("sd15"), diff, extras, expect_missing=(name,))
        done("sd15-missing-key", t0, missing=MISSING_KEY)

    if "sd15-extra-key" in want:
        t0 = time.time()
        tensors, extras, diff = sd15_tensors()
        add = {EXTRA_KEY: torch.randn(4, 4, generator=gen("extra-key", scale))}
        path = os.path.join(out, ITEMS["sd15-extra-key"][0])
        write_checkpoint(path, tensors, extras, "F32", ck_meta, add=add)
        r = S.Reader(path)
        try:  # the unknown key is not a UNet name: the parser refuses it
            try:
                LD.ldm_to_unet(EXTRA_KEY[len(LD.UNET_PREFIX):], models.unet_cfg("sd15"))
                raise AssertionError("the extra key parsed as a UNet weight")
            except KeyError:
                pass
            assert len(r.entries) == len(tensors) + len(extras) + 1
        finally:
            r.close()
        done("sd15-extra-key", t0, extra=EXTRA_KEY)

    if "sd15-ckpt" in want:
        t0 = time.time()
        tensors, extras, _ = sd15_tensors()
        sd = dict(tensors)
        sd.update(extras)
        path = os.path.join(out, ITEMS["sd15-ckpt"][0])
        # what CompVis' / A1111's .ckpt files are: a torch.save zip of {"state_dict": ..., "global_step": ...}
        torch.save({"state_dict": {k: v.clone() for k, v in sorted(sd.items())}, "global_step": 840000}, path)
        with open(path, "rb") as f:
            assert f.read(4) == b"PK\x03\x04"
        done("sd15-ckpt", t0)

    if SMALL in want:
        t0 = time.time()
        unet, text, vae = models.unet(SMALL), models.text(SMALL), models.vae(SMALL)
        tensors, extras, diff = checkpoint_tensors(models, SMALL, unet)
        path = os.path.join(out, ITEMS[SMALL][0])
        write_checkpoint(path, tensors, extras, "F32", ck_meta)
        verify_checkpoint(path, "F32", models, SMALL, unet, diff, extras)
        what = f"{SMALL} (published defaults' divisibility)"
        ref_text_sd15(R, I, text, SMALL, ITEMS[SMALL][0], what, family=SMALL)
        ref_unet(R, I, unet, SMALL, SMALL, ITEMS[SMALL][0], what)
        ref_vae(R, I, vae, SMALL, ITEMS[SMALL][0], what)
        cfg = small_configs()
        done(SMALL, t0, architecture={
            "unet": {k: cfg["unet"][k] for k in ("block_out_channels", "norm_num_groups", "attention_head_dim",
                                                  "cross_attention_dim", "layers_per_block", "sample_size")},
            "text_encoder": {k: cfg["text"][k] for k in ("hidden_size", "num_attention_heads", "num_hidden_layers",
                                                         "intermediate_size", "vocab_size", "max_position_embeddings")},
            "vae": {k: cfg["vae"][k] for k in ("block_out_channels", "norm_num_groups", "latent_channels")},
        })

    # ---------------------------------------------------------------------------------------- SDXL (sgm layout)
    sdxl_read = {}  # item -> {component: {diffusers name: file bytes}} of the files written in this run

    def read_parts(item, parts):
        r = S.Reader(os.path.join(out, ITEMS[item][0]))
        try:
            return {c: {k: S.to_bytes(v, "F16") for k, v in unmap_component(r, p[2], p[3]).items()}
                    for c, p in parts.items()}
        finally:
            r.close()

    def same_as_base(item, parts, comps):
        """The components `comps` of `item`'s file hold sdxl-small's tensors byte for byte. Both files are built
        from the same modules (so verify_parts already implies it); when sdxl-small was written in this run the
        two files are also compared with each other, through the independent LDM -> diffusers parser."""
        mine = read_parts(item, parts)
        base_parts, _ = sdxl_parts(models)
        for c in comps:
            want = {k: S.to_bytes(v, "F16") for k, v in base_parts[c][0].items()}
            assert mine[c] == want, (item, c)
            if SDXL_SMALL in sdxl_read:
                assert mine[c] == sdxl_read[SDXL_SMALL][c], (item, c, "differs from sdxl-small's file")

    sdxl_arch = None
    if any(x in want for x in SDXL_ITEMS):
        c = sdxl_small_configs()
        ukeys, tkeys = SDXL_MANIFEST_UNET_KEYS, SDXL_MANIFEST_TEXT_KEYS
        sdxl_arch = {"unet": {k: c["unet"][k] for k in ukeys},
                     "unet_refiner": {k: c["unet_refiner"][k] for k in ukeys},
                     "text_encoder": {k: c["text_1"][k] for k in tkeys},
                     "text_encoder_2": {k: c["text_2"][k] for k in tkeys},
                     "vae": {k: c["vae"][k] for k in ("block_out_channels", "norm_num_groups", "latent_channels")}}

    def f16(part):  # the module as the float16 file holds it: references use the rounded weights, upcast
        return rounded(models.sdxl(part), torch.float16)

    if SDXL_SMALL in want:
        t0 = time.time()
        parts, extras = sdxl_parts(models)
        path = os.path.join(out, ITEMS[SDXL_SMALL][0])
        tensors = map_parts(parts, extras)
        check_sgm_unet(tensors, sdxl_small_configs()["unet"])
        write_checkpoint(path, tensors, extras, "F16", SDXL_META[SDXL_SMALL])
        verify_parts(path, "F16", parts, extras)
        sdxl_read[SDXL_SMALL] = read_parts(SDXL_SMALL, parts)
        f, what = ITEMS[SDXL_SMALL][0], f"{SDXL_SMALL} (F16 weights)"
        ref_text_sdxl(R, I, f16("text_1"), 1, f, what)
        ref_text_sdxl(R, I, f16("text_2"), 2, f, what)
        ref_unet_sdxl(R, I, f16("unet"), SDXL_SMALL, "sdxl", f, what)
        ref_vae(R, I, f16("vae"), SDXL_SMALL, f, what)
        done(SDXL_SMALL, t0, architecture={k: v for k, v in sdxl_arch.items() if k != "unet_refiner"})

    if SDXL_REFINER_SMALL in want:
        t0 = time.time()
        parts, extras = sdxl_parts(models, refiner=True)
        path = os.path.join(out, ITEMS[SDXL_REFINER_SMALL][0])
        tensors = map_parts(parts, extras)
        check_sgm_unet(tensors, sdxl_small_configs()["unet_refiner"])
        write_checkpoint(path, tensors, extras, "F16", SDXL_META[SDXL_REFINER_SMALL])
        verify_parts(path, "F16", parts, extras)
        same_as_base(SDXL_REFINER_SMALL, parts, ("text_2", "vae"))
        f = ITEMS[SDXL_REFINER_SMALL][0]
        ref_unet_sdxl(R, I, f16("unet_refiner"), SDXL_REFINER_SMALL, "sdxl-refiner", f,
                      f"{SDXL_REFINER_SMALL} (F16 weights; text encoder and VAE: sdxl-small's, see sdxl-small.*)")
        done(SDXL_REFINER_SMALL, t0, architecture={"unet": sdxl_arch["unet_refiner"],
                                                   "text_encoder_2": sdxl_arch["text_encoder_2"],
                                                   "vae": sdxl_arch["vae"]})

    for item, part in ((CLIP_L_SMALL, "text_1"), (CLIP_G_SMALL, "text_2")):
        if item not in want:
            continue
        t0 = time.time()
        # ComfyUI's clip_l / clip_g files: transformers names at the root, no position_ids, no logit_scale
        parts = {part: (params(models.sdxl(part)), LD.hf_text_to_file, "", LD.file_to_hf_text)}
        path = os.path.join(out, ITEMS[item][0])
        write_checkpoint(path, map_parts(parts, {}), {}, "F16", None)
        verify_parts(path, "F16", parts, {})
        same_as_base(item, parts, (part,))
        done(item, t0, architecture={"text_encoder" if part == "text_1" else "text_encoder_2":
                                     sdxl_arch["text_encoder" if part == "text_1" else "text_encoder_2"]},
             references=f"{SDXL_SMALL}.text_{'l' if part == 'text_1' else 'g'}*")

    if SDXL_FULL in want:
        t0 = time.time()
        export = args.sdxl_export if os.path.exists(os.path.join(args.sdxl_export, "unet", "model.onnx")) else None
        if not export:
            log(f"  {SDXL_FULL}: no export at {args.sdxl_export}: the weights come from the same seeds, but are not "
                "checked against it (make it with tools/test-models/make_test_models.py --scale full --only sdxl)")
        info = write_sdxl_full(os.path.join(out, ITEMS[SDXL_FULL][0]), export, SDXL_META[SDXL_FULL])
        c = sdxl_full_components()
        ukeys, tkeys = SDXL_MANIFEST_UNET_KEYS, SDXL_MANIFEST_TEXT_KEYS
        done(SDXL_FULL, t0, architecture={
            "unet": {k: c["unet"]["config"][k] for k in ukeys},
            "text_encoder": {k: c["text_1"]["config"][k] for k in tkeys},
            "text_encoder_2": {k: c["text_2"]["config"][k] for k in tkeys},
            "vae": {k: c["vae"]["config"][k] for k in ("block_out_channels", "norm_num_groups", "latent_channels")},
        }, **info)

    R.save(extra_doc)
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
    ref_bytes = sum(os.path.getsize(os.path.join(R.dir, x)) for x in os.listdir(R.dir))
    log(f"{'reference/':30s} {len(R.tensors):5d} tensors {ref_bytes / 1e6:6.2f} MB, {len(R.calls)} calls; "
        f"total {time.time() - t_all:.1f} s")


if __name__ == "__main__":
    main()
