"""Export a UNet with Stable Diffusion 1.5's exact architecture and RANDOM weights to ONNX (opset 14, fp32),
with the weights in one external data file, for graph tooling and MAC counting at real scale
(packages/onnx-graph). Nothing here is trained: the images it would make are noise.

    /usr/bin/python3 tools/sd15-unet/export_random_unet.py [--out .gategraph/sd15-unet] [--config sd15|tiny]

Writes <out>/unet/model.onnx (graph, ~1 MB) + <out>/unet/model.onnx_data (3.4 GB for sd15) + config.json.
`--config tiny` exports tools/tiny-sd's UNet config with random weights (a development stand-in for
models/tiny-sd/unet before a trained checkpoint exists; its weights are embedded, it is small).

The module classes are tools/tiny-sd/modules.py (diffusers attribute names, configurable by a diffusers
UNet2DConditionModel config), so torch >= 1.13 names the nodes exactly as a diffusers/optimum export does:
/down_blocks.0/attentions.0/transformer_blocks.0/attn2/to_q/MatMul. The SD-1.5 config below is
runwayml/stable-diffusion-v1-5's unet/config.json (attention_head_dim=8 means 8 heads in SD-1.x semantics;
use_linear_projection=False: proj_in/proj_out are 1x1 convs; one transformer block per Transformer2DModel).

Memory: torch's exporter writes models over 2 GB with one external file per tensor; we then merge them into
one model.onnx_data by streaming each file (never holding all weights twice), so the peak is about the torch
model itself (3.4 GB) plus the exporter's copy.
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "tiny-sd"))
import modules as M  # noqa: E402

SD15_UNET_CONFIG = dict(
    _class_name="UNet2DConditionModel",
    _diffusers_version="0.6.0",
    act_fn="silu",
    attention_head_dim=8,
    block_out_channels=[320, 640, 1280, 1280],
    center_input_sample=False,
    cross_attention_dim=768,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    downsample_padding=1,
    flip_sin_to_cos=True,
    freq_shift=0,
    in_channels=4,
    layers_per_block=2,
    mid_block_scale_factor=1,
    norm_eps=1e-5,
    norm_num_groups=32,
    out_channels=4,
    sample_size=64,
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    use_linear_projection=False,
    only_cross_attention=False,
)


def merge_external_data(model_path, data_name):
    """Rewrite every external initializer of model_path into ONE file data_name next to it, streaming."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    folder = os.path.dirname(model_path)
    m = onnx.load(model_path, load_external_data=False)
    used = set()
    with open(os.path.join(folder, data_name), "wb") as out:
        for t in m.graph.initializer:
            if not uses_external_data(t):
                continue
            info = ExternalDataInfo(t)
            src = os.path.join(folder, info.location)
            with open(src, "rb") as f:
                if info.offset:
                    f.seek(info.offset)
                data = f.read(info.length) if info.length else f.read()
            pad = (-out.tell()) % 4096  # page-align each tensor so ORT can memory-map it
            out.write(b"\0" * pad)
            offset = out.tell()
            out.write(data)
            del t.external_data[:]
            for k, v in (("location", data_name), ("offset", str(offset)), ("length", str(len(data)))):
                e = t.external_data.add()
                e.key, e.value = k, v
            t.data_location = onnx.TensorProto.EXTERNAL
            used.add(src)
    onnx.save_model(m, model_path)
    for src in used:
        os.remove(src)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, ".gategraph", "sd15-unet"))
    ap.add_argument("--config", choices=["sd15", "tiny"], default="sd15")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--merge-only", action="store_true", help="only merge an existing export's per-tensor files")
    a = ap.parse_args()
    if a.merge_only:
        merge_external_data(os.path.join(a.out, "unet", "model.onnx"), "model.onnx_data")
        return
    torch.manual_seed(a.seed)
    torch.set_num_threads(2)
    cfg = SD15_UNET_CONFIG if a.config == "sd15" else M.UNET_CONFIG
    unet = M.UNet2DConditionModel(cfg).eval()
    folder = os.path.join(a.out, "unet")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    xdim = cfg["cross_attention_dim"]
    # A small trace input: batch, height and width are dynamic axes, so the graph serves 512x512 (64x64 latents).
    hw = 16
    args = (torch.randn(2, 4, hw, hw), torch.tensor([500.0, 500.0]), torch.randn(2, 77, xdim))
    dyn = {"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "batch"},
           "encoder_hidden_states": {0: "batch", 1: "sequence"}, "out_sample": {0: "batch", 2: "height", 3: "width"}}
    with torch.no_grad():
        torch.onnx.export(unet, args, path, input_names=["sample", "timestep", "encoder_hidden_states"],
                          output_names=["out_sample"], dynamic_axes=dyn, opset_version=14, do_constant_folding=True)
    if a.config == "sd15":
        merge_external_data(path, "model.onnx_data")
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    n = M.count_params(unet)
    print(json.dumps({"model": path, "params": n, "bytes_fp32": n * 4,
                      "files": {x: os.path.getsize(os.path.join(folder, x)) for x in os.listdir(folder)}}, indent=2))


if __name__ == "__main__":
    main()
