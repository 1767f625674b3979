"""A kohya-ss (sd-scripts `networks/lora.py`) style LoRA for an SD-1.x model, and its merge into the
diffusers-named torch modules.

Naming: `lora_unet_` + the diffusers UNet module path with "." -> "_", `lora_te_` + the transformers text-encoder
module path (text_model.encoder.layers.N.self_attn.q_proj -> lora_te_text_model_encoder_layers_N_self_attn_q_proj),
each with `.lora_down.weight`, `.lora_up.weight` and `.alpha` (a 0-d tensor). Shapes: Linear: down [r, in],
up [out, r]; Conv2d (kohya's LoRAModule builds `lora_down` as a Conv2d with the original kernel, `lora_up` as a
1x1 Conv2d): down [r, in, kh, kw], up [out, r, 1, 1].

Applied weight (kohya's merge and ComfyUI's `calculate_weight` "lora" patch):
    W' = W + strength * (alpha / r) * (up.flatten(1) @ down.flatten(1)).reshape(W.shape)
with alpha / r taken as 1 when the file has no `.alpha` for the module (ComfyUI: `alpha = 1.0`; kohya: alpha
defaults to the rank).
"""
import torch
import torch.nn as nn

RANK = 4
ALPHA = 2.0
# resnet 3x3 convolutions that also get a LoRA (kohya's conv_dim / LoCon): one widening (in != out) on the down
# path, one on the up path whose input is the concatenated skip
UNET_CONV3X3 = ["down_blocks.1.resnets.0.conv1", "up_blocks.3.resnets.0.conv1"]
NO_ALPHA = "lora_unet_mid_block_attentions_0_proj_out"  # the one module stored without .alpha


def targets(unet, text):
    """[(kohya name, component, module path, module)] in a fixed order: every Linear / Conv2d inside the UNet's
    Transformer2DModels (proj_in, proj_out, attn1/attn2 to_q/to_k/to_v/to_out.0, ff.net.0.proj, ff.net.2: kohya's
    default UNet targets), the resnet convolutions above, and every text-encoder layer's q/k/v/out_proj, fc1, fc2
    (kohya's CLIPAttention + CLIPMLP targets)."""
    out = []
    for path, mod in unet.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)) and ".attentions." in path:
            out.append(("lora_unet_" + path.replace(".", "_"), "unet", path, mod))
    mods = dict(unet.named_modules())
    for path in UNET_CONV3X3:
        out.append(("lora_unet_" + path.replace(".", "_"), "unet", path, mods[path]))
    for path, mod in text.named_modules():
        if isinstance(mod, nn.Linear) and (".self_attn." in path or ".mlp." in path):
            out.append(("lora_te_" + path.replace(".", "_"), "text", path, mod))
    return out


def make(unet, text, generator):
    """Random LoRA tensors {kohya key: float32 tensor} (values chosen so the merged change is ~10-15% of the
    weight's own spread at strength 0.8) and the module list."""
    tensors = {}
    mods = targets(unet, text)
    for name, _, _, mod in mods:
        w = mod.weight
        if isinstance(mod, nn.Conv2d):
            out_c, in_c, kh, kw = w.shape
            down = torch.randn(RANK, in_c, kh, kw, generator=generator) / (in_c * kh * kw) ** 0.5
            up = torch.randn(out_c, RANK, 1, 1, generator=generator) * 0.1
        else:
            out_c, in_c = w.shape
            down = torch.randn(RANK, in_c, generator=generator) / in_c ** 0.5
            up = torch.randn(out_c, RANK, generator=generator) * 0.1
        tensors[f"{name}.lora_down.weight"] = down
        tensors[f"{name}.lora_up.weight"] = up
        if name != NO_ALPHA:
            tensors[f"{name}.alpha"] = torch.tensor(ALPHA)
    return tensors, mods


def delta(tensors, name, weight_shape):
    """(alpha / r) * up @ down for module `name`, float32, in the weight's shape."""
    down = tensors[f"{name}.lora_down.weight"].float()
    up = tensors[f"{name}.lora_up.weight"].float()
    r = down.shape[0]
    alpha = tensors.get(f"{name}.alpha")
    scale = float(alpha) / r if alpha is not None else 1.0
    diff = torch.mm(up.flatten(1), down.flatten(1)).reshape(weight_shape)
    return scale, diff


def apply(tensors, mods, component, strength):
    """Merges the LoRA into the modules of `component` ("unet" | "text") in place:
    W += (strength * alpha / r) * up @ down."""
    with torch.no_grad():
        for name, comp, _, mod in mods:
            if comp != component:
                continue
            scale, diff = delta(tensors, name, mod.weight.shape)
            mod.weight += (strength * scale) * diff


def snapshot(mods, component):
    return {path: mod.weight.detach().clone() for _, comp, path, mod in mods if comp == component}


def restore(mods, component, saved):
    with torch.no_grad():
        for _, comp, path, mod in mods:
            if comp == component:
                mod.weight.copy_(saved[path])
