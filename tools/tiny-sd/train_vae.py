"""Train the tiny-sd VAE (AutoencoderKL, 64x64x3 <-> 16x16x4) on procedurally rendered images.

    /usr/bin/python3 tools/tiny-sd/train_vae.py [--steps 1400] [--minutes 22] [--resume]

Loss: L1 + MSE on pixels in [-1, 1] plus a small KL term (1e-6 x per-element KL, like SD's first stage);
the decoder is trained on sampled latents (reparameterized). Writes checkpoints/vae.pt (atomic), and at the end
the latent statistics: scaling_factor = 1/std(mean latents) over 1024 fresh images -> checkpoints/vae_stats.json.
"""
import argparse
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import domain  # noqa: E402
import modules as M  # noqa: E402

CK = os.path.join(HERE, "checkpoints")


def batch(rng, n, with_mask=False):
    imgs, masks = [], []
    for _ in range(n):
        sc = domain.sample_scene(rng)
        im = domain.render(sc, rng)
        imgs.append(im)
        masks.append(np.any(im != np.array(domain.BACKGROUNDS[sc["background"]], dtype=np.uint8), axis=-1))
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 127.5 - 1
    if with_mask:
        return x, torch.from_numpy(np.stack(masks))[:, None].float()
    return x


def atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save(vae, opt, step, a, path):
    if a.decoder_only:
        old = torch.load(path) if os.path.exists(path) else {}
        old.update({"model": vae.state_dict(), "decoder_step": step, "dec_opt": opt.state_dict()})
        atomic_save(old, path)
    else:
        atomic_save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step}, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1400)
    ap.add_argument("--minutes", type=float, default=22)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--kl", type=float, default=1e-4, help="weight of the L2 penalty on latent means")
    ap.add_argument("--noise", type=float, default=0.1, help="std of the noise added to the latent mean")
    ap.add_argument("--fg-weight", type=float, default=9.0)
    ap.add_argument("--palette-ce", type=float, default=0.0,
                    help="weight of a per-pixel cross-entropy over the domain's palette: logits are minus the squared "
                         "distance of the output RGB to each palette color / --palette-temp. Every true pixel is a "
                         "palette color, so this pulls edges to the right color instead of the blurry mean that L1/MSE "
                         "settle for (blurry crosses/triangles were read as circles).")
    ap.add_argument("--palette-temp", type=float, default=0.02)
    ap.add_argument("--reset-opt", action="store_true")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--decoder-only", action="store_true",
                    help="freeze encoder + quant_conv (latents, hence the UNet's data, stay unchanged) and fine-tune "
                         "the decoder; with --resume continues from checkpoints/vae.pt")
    a = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    os.makedirs(CK, exist_ok=True)
    vae = M.AutoencoderKL()
    opt = torch.optim.AdamW(vae.parameters(), lr=a.lr, weight_decay=0.0)
    step = 0
    path = os.path.join(CK, "vae.pt")
    if a.resume and os.path.exists(path):
        ck = torch.load(path)
        vae.load_state_dict(ck["model"])
        step = ck["step"]
        if a.decoder_only:
            step = ck.get("decoder_step", 0)
        elif a.reset_opt:
            step = 0
        else:
            opt.load_state_dict(ck["opt"])
    if a.decoder_only:
        for p in list(vae.encoder.parameters()) + list(vae.quant_conv.parameters()):
            p.requires_grad_(False)
        dec_params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
        opt = torch.optim.AdamW(dec_params, lr=a.lr, weight_decay=0.0)
        if a.resume and os.path.exists(path) and "dec_opt" in ck:
            opt.load_state_dict(ck["dec_opt"])
        enc_step = ck["step"] if a.resume and os.path.exists(path) else 0
    rng = random.Random(1000 + step)
    palette = torch.tensor([list(c) for c in list(domain.COLORS.values()) + list(domain.BACKGROUNDS.values())],
                           dtype=torch.float32) / 127.5 - 1
    log = open(os.path.join(HERE, "vae_decoder_loss.csv" if a.decoder_only else "vae_loss.csv"), "a")
    w = csv.writer(log)
    if step == 0:
        w.writerow(["step", "seconds", "l1_weighted", "mse_weighted", "mean_sq"])
    t0 = time.time()
    last_save = t0
    print(f"vae params {M.count_params(vae)}", flush=True)
    while step < a.steps and (time.time() - t0) < a.minutes * 60:
        lr = a.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(1.0, step / a.steps))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, fg = batch(rng, a.batch, with_mask=True)
        with torch.set_grad_enabled(not a.decoder_only):
            mean, logvar = vae.encode_params(x).chunk(2, dim=1)
        # Plain autoencoder with light latent noise (measured: the KL posterior noise of the first run drowned the
        # small objects after 580 steps). The logvar half of the moments is unused and not trained.
        z = mean + a.noise * torch.randn_like(mean)
        y = vae.decode(z)
        wgt = 1 + a.fg_weight * fg  # objects cover ~5 % of the pixels: weight them up
        l1 = ((y - x).abs() * wgt).mean() / wgt.mean()
        mse = ((y - x).pow(2) * wgt).mean() / wgt.mean()
        kl = mean.pow(2).mean()
        loss = l1 + mse + a.kl * kl
        if a.palette_ce > 0:
            d2 = (y[:, None] - palette[None, :, :, None, None]).pow(2).sum(dim=2)  # [B, P, H, W]
            target = (x[:, None] - palette[None, :, :, None, None]).pow(2).sum(dim=2).argmin(dim=1)
            ce = torch.nn.functional.cross_entropy(-d2 / a.palette_temp, target, reduction="none")
            loss = loss + a.palette_ce * (ce * wgt[:, 0]).mean() / wgt.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 10 == 0:
            w.writerow([step, round(time.time() - t0, 1), float(l1), float(mse), float(kl)])
            log.flush()
        if step % 50 == 0:
            print(f"step {step} l1 {float(l1):.4f} mse {float(mse):.5f} kl {float(kl):.3f} lr {lr:.2e} "
                  f"{(time.time() - t0) / max(1, step):.2f}s/step", flush=True)
        if time.time() - last_save > 180:
            save(vae, opt, step, a, path)
            last_save = time.time()
    save(vae, opt, step, a, path)
    # latent statistics
    vae.eval()
    rng = random.Random(424242)
    zs = []
    err = []
    with torch.no_grad():
        for _ in range(8):
            x = batch(rng, 128)
            m = vae.encode_mean(x)
            zs.append(m)
            err.append(float((vae.decode(m) - x).abs().mean()))
    z = torch.cat(zs)
    stats = {"step": enc_step if a.decoder_only else step, "latent_mean": float(z.mean()), "latent_std": float(z.std()),
             "scaling_factor": float(1.0 / z.std()), "recon_l1_on_mean": float(np.mean(err)),
             "per_channel_mean": z.mean(dim=(0, 2, 3)).tolist(), "per_channel_std": z.std(dim=(0, 2, 3)).tolist()}
    sp = os.path.join(CK, "vae_stats.json")
    if a.decoder_only and os.path.exists(sp):  # the encoder is unchanged: keep its scaling factor verbatim
        old = json.load(open(sp))
        old.update({"recon_l1_on_mean": stats["recon_l1_on_mean"], "decoder_step": step})
        stats = old
    with open(sp, "w") as f:
        json.dump(stats, f, indent=2)
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
