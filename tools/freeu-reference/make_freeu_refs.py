"""PyTorch references for gategraph's FreeU / FreeU_V2 graph surgery (packages/onnx-graph/src/freeu.ts).

Writes a random-weight SD-1.x-layout UNet (tools/tiny-sd/modules.py, CI widths [8, 16, 32, 32] so that both of
FreeU's levels exist: model_channels 8, hidden states of 32 = 4 x 8 and 16 = 2 x 8 channels) as an LDM-key
single-file checkpoint, a set of inputs, and the UNet's output on them plain and with ComfyUI's FreeU and FreeU_V2
(comfy_extras/nodes_freelunch.py, transcribed below: the output_block_patch applied to the hidden state and the
skip in front of every up-block concatenation, as ComfyUI's UNet applies it to every output block). The latent is
16 x 24, so the deepest skips are 2 x 3 (an odd width for the Fourier mask); the filter alone is also run on
sizes with a side of 1 and odd sides.

Usage: make_freeu_refs.py --out DIR [--scale ci]
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "test-models"))
sys.path.insert(0, os.path.join(ROOT, "tools", "test-checkpoints"))
import arch as A  # noqa: E402  (puts tools/tiny-sd on the path)
import ldm_layout as LD  # noqa: E402
import modules as M  # noqa: E402
import safetensors_io as S  # noqa: E402

SEED = 20240607
# ComfyUI's defaults of the two nodes.
SETTINGS = {
    "freeu": {"version": 1, "b1": 1.1, "b2": 1.2, "s1": 0.9, "s2": 0.2},
    "freeu_v2": {"version": 2, "b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2},
}


def fourier_filter(x, threshold, scale):
    """ComfyUI's Fourier_filter."""
    x_freq = torch.fft.fftn(x.float(), dim=(-2, -1))
    x_freq = torch.fft.fftshift(x_freq, dim=(-2, -1))
    B, C, H, W = x_freq.shape
    mask = torch.ones((B, C, H, W), device=x.device)
    crow, ccol = H // 2, W // 2
    mask[..., crow - threshold:crow + threshold, ccol - threshold:ccol + threshold] = scale
    x_freq = x_freq * mask
    x_freq = torch.fft.ifftshift(x_freq, dim=(-2, -1))
    return torch.fft.ifftn(x_freq, dim=(-2, -1)).real.to(x.dtype)


def output_block_patch(version, model_channels, b1, b2, s1, s2):
    """ComfyUI's FreeU (version 1) / FreeU_V2 (version 2) output_block_patch."""
    scale_dict = {model_channels * 4: (b1, s1), model_channels * 2: (b2, s2)}

    def patch(h, hsp):
        scale = scale_dict.get(int(h.shape[1]), None)
        if scale is not None:
            h = h.clone()
            if version == 1:
                h[:, :h.shape[1] // 2] = h[:, :h.shape[1] // 2] * scale[0]
            else:
                hidden_mean = h.mean(1).unsqueeze(1)
                B = hidden_mean.shape[0]
                hidden_max, _ = torch.max(hidden_mean.view(B, -1), dim=-1, keepdim=True)
                hidden_min, _ = torch.min(hidden_mean.view(B, -1), dim=-1, keepdim=True)
                hidden_mean = (hidden_mean - hidden_min.unsqueeze(2).unsqueeze(3)) / (hidden_max - hidden_min).unsqueeze(2).unsqueeze(3)
                h[:, :h.shape[1] // 2] = h[:, :h.shape[1] // 2] * ((scale[0] - 1) * hidden_mean + 1)
            hsp = fourier_filter(hsp, threshold=1, scale=scale[1])
        return h, hsp

    return patch


def patched_forward(patch):
    """UpBlock.forward (tools/tiny-sd/modules.py) with the patch in front of each concatenation."""

    def forward(self, x, skips, temb, ctx):
        for i, r in enumerate(self.resnets):
            s = skips[-1]
            skips = skips[:-1]
            if patch is not None:
                x, s = patch(x, s)
            x = r(torch.cat([x, s], dim=1), temb)
            if self.attentions is not None:
                x = self.attentions[i](x, ctx)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x

    return forward


def save(out, name, t):
    t = t.detach().contiguous().float()
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(t.numpy().tobytes())
    return {"file": name + ".bin", "shape": list(t.shape)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--scale", default="ci")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)

    cfg = A.unet_config("sd15", "ci")
    cfg.update(block_out_channels=[8, 16, 32, 32])
    unet = A.build_unet(cfg, SEED)
    # The checkpoint, in LDM keys (what ComfyUI's loaders and gategraph's single-file builder read).
    entries = []
    for name, t in unet.state_dict().items():
        ldm, how = LD.unet_to_ldm(name, cfg)
        assert how in ("same", "conv1x1"), (name, how)
        t = t.reshape(*t.shape, 1, 1) if how == "conv1x1" else t
        entries.append((LD.UNET_PREFIX + ldm, t.contiguous(), "F32"))
    S.write(os.path.join(args.out, "unet.safetensors"), entries)

    g = torch.Generator().manual_seed(SEED)
    inputs = {
        "sample": torch.randn(2, 4, 16, 24, generator=g),
        "timestep": torch.tensor([500.0, 500.0]),
        "encoder_hidden_states": torch.randn(2, 77, cfg["cross_attention_dim"], generator=g),
    }
    index = {"model_channels": cfg["block_out_channels"][0], "settings": SETTINGS, "inputs": {}, "outputs": {}}
    for k, v in inputs.items():
        index["inputs"][k] = save(args.out, "input." + k, v)
    runs = {"plain": None, **{k: output_block_patch(model_channels=cfg["block_out_channels"][0], **v) for k, v in SETTINGS.items()}}
    original = M.UpBlock.forward
    try:
        for name, patch in runs.items():
            M.UpBlock.forward = patched_forward(patch)
            out = unet(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"])
            index["outputs"][name] = save(args.out, "output." + name, out)
    finally:
        M.UpBlock.forward = original
    # The Fourier filter alone at sizes the UNet above does not reach (a side of 1, odd sides), scale 0.2.
    index["filter"] = []
    for i, shape in enumerate([(1, 2, 1, 5), (1, 1, 3, 1), (1, 1, 1, 1), (2, 3, 5, 7), (1, 2, 6, 4)]):
        x = torch.randn(*shape, generator=g)
        index["filter"].append({"scale": 0.2, "input": save(args.out, f"filter{i}.input", x), "output": save(args.out, f"filter{i}.output", fourier_filter(x, 1, 0.2))})
    with open(os.path.join(args.out, "index.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(index, indent=1) + "\n")


if __name__ == "__main__":
    main()
