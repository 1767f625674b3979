"""Eager PyTorch side of bench/sd15.ts: the SD-1.5-architecture UNet with the SAME random weights as the ONNX export
of tools/sd15-unet/export_random_unet.py, timed at the shapes the node side asks for, plus torch.mm for the GEMM
peak. bench/sd15.ts spawns this script and drives it over stdin/stdout, so that its rounds alternate with
onnxruntime's in one run; run alone it only builds the model, checks the weights and waits for commands.

    /usr/bin/python3 bench/sd15_torch.py --unet .gategraph/sd15-unet/unet --seed 0 --threads 2

Same weights, and why they are provably the same: the export script builds the module with torch.manual_seed(seed)
then tools/tiny-sd/modules.py's UNet2DConditionModel(config); this script does exactly that, with the config the
export wrote (<unet>/config.json), so the initializers draw the same random numbers. That is cheaper than loading
3.4 GB of ONNX initializers back into the module, which would also need a name map for the weights the exporter
renamed. Then, before answering anything, every parameter is compared byte for byte with the export's initializers
(model.onnx_data, memory-mapped): by name where the exporter kept the parameter's name (convolutions, biases), else
as the renamed initializer it constant-folded the parameter into (a Linear weight transposed for MatMul, a norm
weight with unit dims added). Any parameter without an identical initializer fails the check (exit 4).
bench/sd15.ts then compares one forward pass numerically as well.

With --checkpoint FILE (bench/single-file.ts) the weights come from a single-file checkpoint instead: the module is
built as above, then every UNet tensor of FILE (LDM names, tools/test-checkpoints/ldm_layout.py maps them to the
module's) is copied into it, float16 upcast; a parameter FILE lacks, or a FILE tensor of another shape, fails (exit 4).
The same byte-for-byte check against --unet's initializers then proves that FILE and that export hold the same weights.

Protocol: one JSON object per line on stdin, one JSON line answered on stdout (stderr is for humans):
  {"cmd": "unet", "batch": B, "size": PX, "reps": N}  -> {"ms": [...]}   N timed forward passes, B x 4 x PX/8 x PX/8
  {"cmd": "forward", "dir": D, "batch": B, "size": PX} -> {"ms": t}     reads D/sample.f32, D/timestep.f32,
                                                                        D/context.f32, writes D/torch_out.f32
  {"cmd": "gemm", "n": N, "reps": R}                  -> {"ms": [...]}   R timed torch.mm of N x N float32
  {"cmd": "quit"}
The first line written is {"ready": true, "torch": ..., "threads": ..., "weights": {...}}. Exit code 3 (message on
stderr): torch or numpy is not installed; 4: the weights are not the export's.
"""
import argparse
import json
import os
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unet", required=True, help="the export's unet folder (model.onnx, model.onnx_data, config.json)")
    ap.add_argument("--seed", type=int, default=0, help="the seed the export used (export_random_unet.py --seed, default 0)")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--checkpoint", help="load the weights from this single-file checkpoint (LDM key layout, "
                    "model.diffusion_model.*; float16 values are upcast) instead of building them from --seed "
                    "(bench/single-file.ts); the weight check then proves the file holds the export's weights")
    ap.add_argument("--skip-weight-check", action="store_true")
    return ap.parse_args()


A = parse_args()
# Thread pools are sized when torch (OpenMP) and OpenBLAS load: set them first. Passive waiting: OpenMP threads that
# busy-wait collapse when the cores are shared (bench/torch_unet.py); it is PyTorch's better setting on this machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["OMP_NUM_THREADS"] = str(A.threads)
# Debian's torch runs its Linear layers and torch.mm in OpenBLAS (the pthreads build), whose pool this variable sizes.
os.environ["OPENBLAS_NUM_THREADS"] = str(A.threads)

try:
    import numpy as np  # noqa: E402
    import torch  # noqa: E402
except ImportError as e:
    print(f"PyTorch side unavailable: {e}", file=sys.stderr, flush=True)
    sys.exit(3)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "tiny-sd"))
import modules as M  # noqa: E402


def log(msg):
    print(f"[sd15_torch] {msg}", file=sys.stderr, flush=True)


def build(unet_dir, seed):
    with open(os.path.join(unet_dir, "config.json")) as f:
        cfg = json.load(f)
    # The export's order: seed, then construct (nothing else draws from the generator in between).
    torch.manual_seed(seed)
    return M.UNet2DConditionModel(cfg).eval(), cfg


def load_checkpoint(unet, cfg, path):
    """Copies the UNet tensors of an LDM single-file checkpoint into `unet`; returns how many tensors it read."""
    sys.path.insert(0, os.path.join(HERE, "..", "tools", "test-checkpoints"))
    import ldm_layout
    import safetensors_io

    reader = safetensors_io.Reader(path)
    params = unet.state_dict()  # shares storage with the parameters: copy_ fills the module
    seen = set()
    try:
        for key in reader.names():
            if not key.startswith(ldm_layout.UNET_PREFIX):
                continue
            name = ldm_layout.ldm_to_unet(key[len(ldm_layout.UNET_PREFIX):], cfg)
            if name not in params:
                raise SystemExit(f"checkpoint: {key} maps to {name}, which the module does not have")
            t = reader.tensor(key)
            if tuple(t.shape) != tuple(params[name].shape):
                raise SystemExit(f"checkpoint: {key} has shape {tuple(t.shape)}, the module's {name} {tuple(params[name].shape)}")
            params[name].copy_(t)
            seen.add(name)
            del t
    finally:
        del params
        try:
            reader.close()
        except BufferError:
            pass  # a tensor view still alive: the map goes with the reader
    missing = [n for n, _ in unet.named_parameters() if n not in seen]
    if missing:
        raise SystemExit(f"checkpoint: {len(missing)} parameters are not in {path} (e.g. {', '.join(missing[:3])})")
    return len(seen)


def check_weights(unet, unet_dir):
    """Every parameter against the export's initializers, byte for byte. Returns a summary; raises on a mismatch."""
    import onnx
    from onnx import numpy_helper
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    model = onnx.load(os.path.join(unet_dir, "model.onnx"), load_external_data=False)
    maps = {}

    def array_of(t):
        if not uses_external_data(t):
            return numpy_helper.to_array(t)
        info = ExternalDataInfo(t)
        path = os.path.join(unet_dir, info.location)
        if path not in maps:
            maps[path] = np.memmap(path, dtype=np.uint8, mode="r")
        raw = maps[path][int(info.offset or 0):int(info.offset or 0) + int(info.length)]
        assert t.data_type == onnx.TensorProto.FLOAT, f"{t.name}: not float32"
        return raw.view(np.float32).reshape(tuple(t.dims))

    inits = {t.name: t for t in model.graph.initializer}
    by_name, folded, unmatched = 0, 0, []
    # The exporter renames what it constant-folds: a Linear weight becomes its transpose (MatMul's operand), a norm's
    # weight gains unit dims (Unsqueeze); equal folded constants (the norms' initial ones and zeros) are stored once
    # and shared. Index those initializers by size and first values to find them quickly.
    pending = {}
    for name, t in inits.items():
        if "::" in name:
            a = array_of(t).reshape(-1)
            pending.setdefault((a.size, a[:8].tobytes()), []).append(name)
    for pname, p in unet.state_dict().items():
        w = p.detach().contiguous().numpy()
        t = inits.get(pname)
        if t is not None:
            a = array_of(t)
            if a.shape != w.shape or a.tobytes() != w.tobytes():
                raise SystemExit(f"weight check: {pname} differs from the export's initializer of that name")
            by_name += 1
            continue
        forms = [w.reshape(-1)] + ([np.ascontiguousarray(w.T).reshape(-1)] if w.ndim == 2 else [])
        match = next((c for f in forms for c in pending.get((f.size, f[:8].tobytes()), [])
                      if array_of(inits[c]).tobytes() == f.tobytes()), None)
        if match is None:
            unmatched.append(pname)
        else:
            folded += 1
    maps.clear()
    if unmatched:
        raise SystemExit(
            f"weight check: {len(unmatched)} parameters have no identical initializer in the export "
            f"(e.g. {', '.join(unmatched[:3])}): the export was made with another seed (--seed) or other module code, "
            f"or the --checkpoint file does not hold the export's weights"
        )
    return {"parameters": by_name + folded, "by_name": by_name, "folded": folded,
            "elements": sum(p.numel() for p in unet.parameters())}


def main():
    torch.set_num_threads(A.threads)
    t0 = time.perf_counter()
    unet, cfg = build(A.unet, A.seed)
    log(f"built the UNet (seed {A.seed}) in {time.perf_counter() - t0:.1f} s")
    if A.checkpoint:
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                n = load_checkpoint(unet, cfg, A.checkpoint)
        except SystemExit as e:
            print(str(e), file=sys.stderr, flush=True)
            sys.exit(4)
        log(f"loaded {n} UNet tensors from {os.path.basename(A.checkpoint)} in {time.perf_counter() - t0:.1f} s")
    weights = {"checked": False}
    if not A.skip_weight_check:
        t0 = time.perf_counter()
        try:
            weights = {"checked": True, **check_weights(unet, A.unet)}
        except SystemExit as e:
            print(str(e), file=sys.stderr, flush=True)
            sys.exit(4)
        log(f"weights identical to the export's ({weights['parameters']} tensors) in {time.perf_counter() - t0:.1f} s")
        # The check mapped the export's 3.4 GB: reset the peak-RSS mark (VmHWM), which bench/sd15.ts reads, so that it
        # tells what the forward passes need.
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
    out = sys.stdout
    out.write(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "weights": weights}) + "\n")
    out.flush()

    inputs = {}
    mats = {}
    xdim = cfg["cross_attention_dim"]
    g = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            op = cmd["cmd"]
            if op == "quit":
                break
            if op == "unet":
                b, px = cmd["batch"], cmd["size"]
                key = (b, px)
                if key not in inputs:
                    inputs[key] = (torch.randn(b, cfg["in_channels"], px // 8, px // 8, generator=g),
                                   torch.full((b,), 500.0), torch.randn(b, 77, xdim, generator=g))
                x, t, ctx = inputs[key]
                ms = []
                for _ in range(cmd["reps"]):
                    t0 = time.perf_counter()
                    unet(x, t, ctx)
                    ms.append((time.perf_counter() - t0) * 1000)
                reply = {"ms": ms}
            elif op == "forward":
                d, b, px = cmd["dir"], cmd["batch"], cmd["size"]
                x = torch.from_numpy(np.fromfile(os.path.join(d, "sample.f32"), dtype=np.float32).reshape(b, cfg["in_channels"], px // 8, px // 8))
                t = torch.from_numpy(np.fromfile(os.path.join(d, "timestep.f32"), dtype=np.float32).reshape(b))
                ctx = torch.from_numpy(np.fromfile(os.path.join(d, "context.f32"), dtype=np.float32).reshape(b, 77, xdim))
                t0 = time.perf_counter()
                y = unet(x, t, ctx)
                ms = (time.perf_counter() - t0) * 1000
                y.contiguous().numpy().tofile(os.path.join(d, "torch_out.f32"))
                reply = {"ms": ms}
            elif op == "gemm":
                n = cmd["n"]
                if n not in mats:
                    mats.clear()
                    mats[n] = (torch.randn(n, n, generator=g), torch.randn(n, n, generator=g))
                a, bm = mats[n]
                ms = []
                for _ in range(cmd["reps"]):
                    t0 = time.perf_counter()
                    torch.mm(a, bm)
                    ms.append((time.perf_counter() - t0) * 1000)
                reply = {"ms": ms}
            else:
                reply = {"error": f"unknown command {op!r}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
