"""Eager PyTorch timing of the tiny-sd UNet, for bench/engine.ts (which spawns this script).

    /usr/bin/python3 bench/torch_unet.py --ckpt tools/tiny-sd/checkpoints/unet.pt --runs 30 --warmup 5 --threads 2

The network is the one the ONNX file was exported from: tools/tiny-sd/modules.py's UNet2DConditionModel built
from the checkpoint's own unet_config, with its EMA weights (what export.py exports). Only the architecture and
the tensor shapes matter for speed; if training went on after the export, the weights differ but the work per
step is identical. Inputs have the shapes of a sampling step: sample [B, 4, h, w], timestep float [B],
encoder_hidden_states [B, 77, D]. Runs under torch.inference_mode() in float32 on the CPU.

Prints one JSON line: {"torch": "<version>", "threads": T, "batch1_ms": [...], "batch2_ms": [...]}.
Exit code 3 (with a message on stderr) when torch or the checkpoint is missing.
"""
import argparse
import json
import os
import sys
import time

# OpenMP threads that busy-wait collapse when the cores are shared (tools/tiny-sd/sample.py measured 6x);
# passive waiting gives PyTorch its best showing on a busy machine. Must be set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..", "tools", "tiny-sd")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.environ.get("GATEGRAPH_BENCH_CKPT") or os.path.join(TOOLS, "checkpoints", "unet.pt"))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("torch is not installed for this python", file=sys.stderr)
        sys.exit(3)
    if not os.path.exists(a.ckpt):
        print(f"no UNet checkpoint at {a.ckpt} (tools/tiny-sd training output)", file=sys.stderr)
        sys.exit(3)
    sys.path.insert(0, TOOLS)
    import modules as M

    torch.set_num_threads(a.threads)
    ck = torch.load(a.ckpt, map_location="cpu")
    cfg = ck.get("unet_config", M.UNET_CONFIG)
    unet = M.UNet2DConditionModel(cfg)
    unet.load_state_dict(ck.get("ema_unet", ck["unet"]))
    unet.eval()
    size = cfg["sample_size"]
    dim = cfg["cross_attention_dim"]
    g = torch.Generator().manual_seed(0)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "training_step": ck.get("step")}
    with torch.inference_mode():
        for batch in (1, 2):
            x = torch.randn(batch, cfg["in_channels"], size, size, generator=g)
            t = torch.full((batch,), 500.0)
            ctx = torch.randn(batch, 77, dim, generator=g)
            for _ in range(a.warmup):
                unet(x, t, ctx)
            times = []
            for _ in range(a.runs):
                t0 = time.perf_counter()
                unet(x, t, ctx)
                times.append((time.perf_counter() - t0) * 1000)
            result[f"batch{batch}_ms"] = times
    print(json.dumps(result))


if __name__ == "__main__":
    main()
