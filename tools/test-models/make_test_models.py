"""Write random-weight Stable Diffusion ONNX folders in every published layout, each with PyTorch reference
outputs on seeded inputs (see README.md).

    /usr/bin/python3 tools/test-models/make_test_models.py --out DIR --scale ci|full [--only NAME[,NAME...]]
        [--list] [--seed N] [--jobs N]

Writes DIR/NAME/ per layout (replacing an existing one) and prints one line per folder: name, size on disk,
seconds. Same arguments -> byte-identical files.
"""
import argparse
import os
import shutil
import sys
import time

# Busy-waiting OpenMP threads collapse under CPU contention (tools/tiny-sd measured 6x slower steps); passive
# waiting must be set before torch loads OpenMP, in this process and in the workers it spawns.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import layouts as LY  # noqa: E402


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def human(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def run_jobs(jobs, n_workers):
    """Runs the export jobs, the UNets (the slow ones: the exporter's passes cost ~10-30 s per UNet graph
    whatever its width) first. Workers are spawned, not forked, so no OpenMP state is inherited."""
    import exporters as E

    order = sorted(jobs, key=lambda k: (k[0] != "unet", k))
    done = {}
    if n_workers <= 1:
        for k in order:
            done[k] = E.run_job(jobs[k])
            print(f"  exported {'/'.join(k)} in {done[k]['seconds']:.1f} s", flush=True)
    else:
        import multiprocessing as mp

        os.environ["TEST_MODELS_WORKER"] = "1"  # one torch thread per worker: n_workers threads in all
        ctx = mp.get_context("spawn")
        with ctx.Pool(n_workers) as pool:
            pending = {k: pool.apply_async(E.run_job, (jobs[k],)) for k in order}
            for k in order:
                done[k] = pending[k].get()
                print(f"  exported {'/'.join(k)} in {done[k]['seconds']:.1f} s", flush=True)
    results = {}
    for k, r in done.items():
        if k[0] == "unet":  # one job per family, one result per (arch, exporter variant)
            for (arch, variant), v in r["variants"].items():
                results[("unet", arch, variant)] = v
        else:
            results[k] = r
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="output folder (one subfolder per layout)")
    ap.add_argument("--scale", choices=["ci", "full"], default="ci")
    ap.add_argument("--only", help="comma-separated layout names (default: all)")
    ap.add_argument("--list", action="store_true", help="list the layouts and exit")
    ap.add_argument("--seed", type=int, default=0, help="mixed into every weight and input seed")
    ap.add_argument("--genuine", action="store_true",
                    help="export every UNet variant with torch instead of deriving it from the family's base export "
                         "(slower: ~20-40 s per UNet; the files differ only in constant numbering, see README)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="export worker processes, one torch thread each (default: 2 for ci, 1 for full: a full "
                         "UNet export needs ~10 GB of memory)")
    a = ap.parse_args()
    if a.list:
        for n, L in LY.LAYOUTS.items():
            print(f"{n:24s} {L['desc']}")
        return
    if not a.out:
        ap.error("--out is required")
    names = list(LY.LAYOUTS) if not a.only else [n.strip() for n in a.only.split(",") if n.strip()]
    bad = [n for n in names if n not in LY.LAYOUTS]
    if bad:
        ap.error(f"unknown layout(s): {', '.join(bad)} (see --list)")
    os.environ["TEST_MODELS_SEED"] = str(a.seed)
    import torch

    torch.set_num_threads(2)
    t0 = time.time()
    out = os.path.abspath(a.out)
    work = os.path.join(out, ".work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    tokens = LY.prompt_tokens(a.scale)
    jobs = LY.plan_jobs(names, a.scale, work, tokens, a.genuine)
    n_workers = a.jobs if a.jobs is not None else (2 if a.scale == "ci" else 1)
    print(f"{len(jobs)} export jobs, {n_workers} worker(s), scale {a.scale}", flush=True)
    results = run_jobs(jobs, min(n_workers, max(1, len(jobs))))
    t_export = time.time() - t0
    for n in names:
        t1 = time.time()
        folder = os.path.join(out, n)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        LY.assemble(n, folder, a.scale, results, tokens)
        print(f"{n:24s} {human(du(folder)):>10s} {time.time() - t1:6.1f} s", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"total {time.time() - t0:.1f} s (exports {t_export:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
