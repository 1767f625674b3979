"""Train the tiny-sd UNet + CLIP-like text encoder jointly on frozen-VAE latents (epsilon prediction,
SD-1.x scaled_linear betas, 10 % empty-caption dropout for classifier-free guidance, EMA for export).

    /usr/bin/python3 tools/tiny-sd/train_unet.py --resume            # idempotent: prepares data if missing,
                                                                      # resumes from checkpoints/unet.pt if present
Options: --batch 32 --lr 3e-4 --max-steps 100000 --dataset 30000 --save-minutes 4 --snapshot-every 2000

Files (all under tools/tiny-sd/checkpoints/, gitignored):
  latents_<N>.pt   scaled VAE latents (mean x scaling_factor) of N rendered images, fp16, + token ids + captions
  unet.pt          latest training state (unet, text encoder, their EMAs, optimizer, step), written atomically
  unet_step<k>.pt  EMA-only snapshots every --snapshot-every steps
Loss curve: tools/tiny-sd/loss.csv (step, seconds, loss averaged over the last 20 steps, lr).
Stop cleanly: touch tools/tiny-sd/checkpoints/STOP (the loop saves and exits).
"""
import argparse
import copy
import csv
import json
import os
import random
import sys
import time

# Busy-waiting OpenMP threads collapse under CPU contention (measured: 13 s/step instead of 2 s/step for the
# VAE while other jobs shared the 2 cores); passive waiting must be set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import domain  # noqa: E402
import modules as M  # noqa: E402

CK = os.path.join(HERE, "checkpoints")


def atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_vae():
    vae = M.AutoencoderKL()
    vae.load_state_dict(torch.load(os.path.join(CK, "vae.pt"))["model"])
    vae.eval()
    with open(os.path.join(CK, "vae_stats.json")) as f:
        stats = json.load(f)
    return vae, stats


def text_config():
    cfg = dict(M.TEXT_CONFIG)
    v = domain.vocab()
    cfg["vocab_size"] = len(v)
    cfg["bos_token_id"] = v[domain.SPECIALS["bos"]]
    cfg["eos_token_id"] = v[domain.SPECIALS["eos"]]
    cfg["pad_token_id"] = v[domain.SPECIALS["eos"]]
    return cfg


def prepare(n, seed=7):
    path = os.path.join(CK, f"latents_{n}.pt")
    if os.path.exists(path):
        return torch.load(path)
    torch.set_num_threads(2)
    vae, stats = load_vae()
    sf = stats["scaling_factor"]
    rng = random.Random(seed)
    caps, lat = [], []
    t0 = time.time()
    chunk = 250
    with torch.no_grad():
        for i in range(0, n, chunk):
            imgs = []
            for _ in range(min(chunk, n - i)):
                sc = domain.sample_scene(rng)  # training distribution: held-out pairs never appear
                caps.append(domain.caption(sc))
                imgs.append(domain.render(sc, rng))
            x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 127.5 - 1
            lat.append((vae.encode_mean(x) * sf).half())
            if (i // chunk) % 20 == 0:
                print(f"prepare {i + chunk}/{n} {time.time() - t0:.0f}s", flush=True)
    v = domain.vocab()
    ids = torch.tensor([domain.encode(c, v) for c in caps], dtype=torch.int16)
    data = {"latents": torch.cat(lat), "ids": ids, "captions": caps, "scaling_factor": sf, "seed": seed}
    atomic_save(data, path)
    print(f"prepared {n} latents in {time.time() - t0:.0f}s, std {float(data['latents'].float().std()):.3f}",
          flush=True)
    return data


def build():
    unet = M.UNet2DConditionModel(M.UNET_CONFIG)
    text = M.CLIPTextModel(text_config())
    return unet, text


@torch.no_grad()
def ema_update(ema, model, decay):
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--dataset", type=int, default=30000)
    ap.add_argument("--cfg-drop", type=float, default=0.1)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--save-minutes", type=float, default=4)
    ap.add_argument("--snapshot-every", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-snr", type=float, default=0.0,
                    help="Min-SNR-gamma loss weighting (Hang et al. 2023), 0 = plain MSE. With epsilon prediction the "
                         "weight is min(SNR, gamma) / SNR: it stops the many easy low-noise steps from dominating the "
                         "gradient, which is where layout (position, shape) is decided less; 5 is the paper's value.")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(CK, exist_ok=True)
    data = prepare(a.dataset)
    lat = data["latents"]
    ids_all = data["ids"].long()
    N = lat.shape[0]
    empty = torch.tensor(domain.encode(""), dtype=torch.long)

    unet, text = build()
    ema_unet, ema_text = copy.deepcopy(unet), copy.deepcopy(text)
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
    step = 0
    path = os.path.join(CK, "unet.pt")
    if a.resume and os.path.exists(path):
        ck = torch.load(path)
        unet.load_state_dict(ck["unet"])
        text.load_state_dict(ck["text"])
        ema_unet.load_state_dict(ck["ema_unet"])
        ema_text.load_state_dict(ck["ema_text"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        print(f"resumed at step {step}", flush=True)
    print(f"unet params {M.count_params(unet)} text params {M.count_params(text)} dataset {N}", flush=True)
    ac = M.alphas_cumprod()
    T = len(ac)
    g = torch.Generator().manual_seed(12345 + step)

    new_log = not os.path.exists(os.path.join(HERE, "loss.csv"))
    log = open(os.path.join(HERE, "loss.csv"), "a")
    w = csv.writer(log)
    if new_log:
        w.writerow(["step", "seconds", "loss", "lr"])
    prev_seconds = 0.0
    if not new_log:
        try:
            rows = open(os.path.join(HERE, "loss.csv")).read().strip().split("\n")
            prev_seconds = float(rows[-1].split(",")[1]) if len(rows) > 1 else 0.0
        except Exception:
            prev_seconds = 0.0
    t0 = time.time()
    last_save = t0
    losses = []
    stop = os.path.join(CK, "STOP")
    unet.train()
    text.train()
    while step < a.max_steps:
        if os.path.exists(stop):
            print("STOP file found", flush=True)
            break
        lr = a.lr * min(1.0, (step + 1) / a.warmup)
        for pg in opt.param_groups:
            pg["lr"] = lr
        idx = torch.randint(0, N, (a.batch,), generator=g)
        x0 = lat[idx].float()
        ids = ids_all[idx].clone()
        drop = torch.rand(a.batch, generator=g) < a.cfg_drop
        ids[drop] = empty
        t = torch.randint(0, T, (a.batch,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        at = ac[t].view(-1, 1, 1, 1)
        xt = at.sqrt() * x0 + (1 - at).sqrt() * noise
        hs, _ = text(ids)
        pred = unet(xt, t.float(), hs)
        if a.min_snr > 0:
            snr = at.view(-1) / (1 - at.view(-1))
            weight = torch.clamp(snr, max=a.min_snr) / snr
            loss = (weight * ((pred - noise) ** 2).mean(dim=(1, 2, 3))).mean()
        else:
            loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(a.ema, (1 + step) / (10 + step))
        ema_update(ema_unet, unet, decay)
        ema_update(ema_text, text, decay)
        losses.append(float(loss))
        if step % 20 == 0:
            el = time.time() - t0
            w.writerow([step, round(prev_seconds + el, 1), round(float(np.mean(losses[-20:])), 5), lr])
            log.flush()
        if step % 100 == 0:
            print(f"step {step} loss {np.mean(losses[-100:]):.4f} lr {lr:.2e} "
                  f"{(time.time() - t0) / len(losses):.2f}s/step", flush=True)
        if time.time() - last_save > a.save_minutes * 60 or step % a.snapshot_every == 0:
            state = {"unet": unet.state_dict(), "text": text.state_dict(), "ema_unet": ema_unet.state_dict(),
                     "ema_text": ema_text.state_dict(), "opt": opt.state_dict(), "step": step,
                     "unet_config": M.UNET_CONFIG, "text_config": text_config(),
                     "scaling_factor": data["scaling_factor"]}
            atomic_save(state, path)
            last_save = time.time()
            if step % a.snapshot_every == 0:
                atomic_save({"ema_unet": ema_unet.state_dict(), "ema_text": ema_text.state_dict(), "step": step,
                             "unet_config": M.UNET_CONFIG, "text_config": text_config(),
                             "scaling_factor": data["scaling_factor"]},
                            os.path.join(CK, f"unet_step{step}.pt"))
    state = {"unet": unet.state_dict(), "text": text.state_dict(), "ema_unet": ema_unet.state_dict(),
             "ema_text": ema_text.state_dict(), "opt": opt.state_dict(), "step": step,
             "unet_config": M.UNET_CONFIG, "text_config": text_config(), "scaling_factor": data["scaling_factor"]}
    atomic_save(state, path)
    print(f"saved at step {step}", flush=True)


if __name__ == "__main__":
    main()
