"""DDIM sampling with classifier-free guidance from a tiny-sd training checkpoint (PyTorch, EMA weights).

    # 16-prompt contact sheet -> models/tiny-sd/contact-sheet.png
    /usr/bin/python3 tools/tiny-sd/sample.py sheet [--guidance 6] [--steps 25]
    # evaluation folder for the judge (PNGs + captions.json):
    /usr/bin/python3 tools/tiny-sd/sample.py eval --n 200 --seed 1 --guidance 6 --out tools/tiny-sd/runs/eval-g6
    /usr/bin/python3 tools/tiny-sd/sample.py eval --n 100 --seed 2 --held-out --out tools/tiny-sd/runs/eval-heldout
    # per-step cross-attention (attn2) outputs, relative change between consecutive steps:
    /usr/bin/python3 tools/tiny-sd/sample.py attn --out tools/tiny-sd/attn2-convergence.json
    # ground-truth renders for the judge (no model):
    /usr/bin/python3 tools/tiny-sd/sample.py truth --n 40 --seed 3 --out packages/judge/test/fixtures/truth

DDIM as diffusers' DDIMScheduler (eta 0, timestep_spacing "leading", steps_offset 1, set_alpha_to_one false):
25 steps -> t = 961, 921, ..., 1. CFG batch is [uncond, cond], eps = eps_u + g (eps_c - eps_u).
Initial noise per image: torch.Generator seeded with (seed * 100003 + index).
"""
import argparse
import json
import os
import random
import sys

# Busy-waiting OpenMP threads collapse under CPU contention (measured: 13 s/step instead of 2 s/step for the
# VAE while other jobs shared the 2 cores); passive waiting must be set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import domain  # noqa: E402
import modules as M  # noqa: E402

CK = os.path.join(HERE, "checkpoints")
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

SHEET_PROMPTS = [
    "a large red circle at the top left on a gray background",
    "a small blue square at the bottom right on a white background",
    "a large yellow triangle in the center on a black background",
    "a small green circle on the right on a brown background",
    "a large purple cross at the top on a white background",
    "a small orange square on the left on a black background",
    "a large blue triangle at the bottom left on a gray background",
    "a large green square at the top right on a white background",
    "two small red circles on a black background",
    "two small yellow triangles on a gray background",
    "a red square above a blue cross on a white background",
    "a green circle to the left of a purple triangle on a black background",
    # held-out color+shape pairs (never seen in training)
    "a large red triangle in the center on a white background",
    "a small blue circle at the top left on a gray background",
    "a large green cross at the bottom on a black background",
    "a large yellow square on the right on a brown background",
]


def load(ckpt=None):
    ckpt = ckpt or os.path.join(CK, "unet.pt")
    ck = torch.load(ckpt)
    unet = M.UNet2DConditionModel(ck.get("unet_config", M.UNET_CONFIG))
    text = M.CLIPTextModel(ck["text_config"])
    unet.load_state_dict(ck["ema_unet"])
    text.load_state_dict(ck["ema_text"])
    vae = M.AutoencoderKL()
    vae.load_state_dict(torch.load(os.path.join(CK, "vae.pt"))["model"])
    for m in (unet, text, vae):
        m.eval()
    return unet, text, vae, ck


def ddim_timesteps(steps, T=1000, offset=1):
    ratio = T // steps
    return [int(t) for t in (np.arange(0, steps) * ratio).round()[::-1] + offset]


@torch.no_grad()
def generate(unet, text, vae, sf, prompts, seeds, guidance=6.0, steps=25, hook=None):
    """Returns uint8 [B,64,64,3]. hook(step_index) is called before each UNet call (for attention logging)."""
    ac = M.alphas_cumprod()
    v = domain.vocab()
    ids_c = torch.tensor([domain.encode(p, v) for p in prompts])
    ids_u = torch.tensor([domain.encode("", v)] * len(prompts))
    hc, _ = text(ids_c)
    hu, _ = text(ids_u)
    x = torch.stack([torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(s)) for s in seeds])
    ts = ddim_timesteps(steps)
    ratio = 1000 // steps
    for i, t in enumerate(ts):
        if hook:
            hook(i)
        if guidance == 1.0:
            eps = unet(x, torch.full((len(prompts),), float(t)), hc)
        else:
            e = unet(torch.cat([x, x]), torch.full((2 * len(prompts),), float(t)), torch.cat([hu, hc]))
            eu, ec = e.chunk(2)
            eps = eu + guidance * (ec - eu)
        a_t = ac[t]
        prev = t - ratio
        a_p = ac[prev] if prev >= 0 else ac[0]
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        x = a_p.sqrt() * x0 + (1 - a_p).sqrt() * eps
    img = vae.decode(x / sf)
    return ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def seeds_for(seed, n):
    return [seed * 100003 + i for i in range(n)]


def contact_sheet(images, captions, path, scale=3, cols=4):
    n = len(images)
    rows = (n + cols - 1) // cols
    cw, chh = 64 * scale, 64 * scale + 34
    sheet = Image.new("RGB", (cols * cw, rows * chh), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    for i, (im, c) in enumerate(zip(images, captions)):
        x, y = (i % cols) * cw, (i // cols) * chh
        sheet.paste(Image.fromarray(im).resize((cw, cw), Image.NEAREST), (x, y))
        words, lines, cur = c.split(), [], ""
        for w in words:
            if len(cur) + len(w) + 1 > 32:
                lines.append(cur)
                cur = w
            else:
                cur = (cur + " " + w).strip()
        lines.append(cur)
        for k, line in enumerate(lines[:3]):
            d.text((x + 3, y + cw + 1 + 11 * k), line, fill=(0, 0, 0))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sheet.save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["sheet", "eval", "attn", "truth", "recon"])
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--guidance", type=float, default=6.0)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--held-out", action="store_true")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.mode == "truth":
        out = a.out or os.path.join(ROOT, "packages", "judge", "test", "fixtures", "truth")
        os.makedirs(out, exist_ok=True)
        rng = random.Random(a.seed)
        items = []
        for i in range(a.n):
            sc = domain.sample_scene(rng, held_out=(i % 5 == 4))
            name = f"{i:04d}.png"
            Image.fromarray(domain.render(sc, rng)).save(os.path.join(out, name), optimize=True)
            items.append({"file": name, "caption": domain.caption(sc)})
        json.dump(items, open(os.path.join(out, "captions.json"), "w"), indent=1)
        return
    if a.mode == "recon":
        # VAE round trip of ground-truth renders (encoder mean -> decoder), for the judge: is the VAE good enough?
        out = a.out or os.path.join(HERE, "runs", "vae-recon")
        os.makedirs(out, exist_ok=True)
        vae = M.AutoencoderKL()
        vck = torch.load(os.path.join(CK, "vae.pt"))
        vae.load_state_dict(vck["model"])
        vae.eval()
        rng = random.Random(a.seed)
        items, pairs = [], []
        for i in range(a.n):
            sc = domain.sample_scene(rng, held_out=(i % 5 == 4))
            im = domain.render(sc, rng)
            x = torch.from_numpy(im).permute(2, 0, 1)[None].float() / 127.5 - 1
            with torch.no_grad():
                y = vae.decode(vae.encode_mean(x))
            rec = ((y[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
            name = f"{i:04d}.png"
            Image.fromarray(rec).save(os.path.join(out, name))
            items.append({"file": name, "caption": domain.caption(sc)})
            if i < 16:
                pairs += [im, rec]
        json.dump(items, open(os.path.join(out, "captions.json"), "w"), indent=1)
        contact_sheet(pairs, [c for it in items[:16] for c in ("truth", "recon: " + it["caption"])],
                      os.path.join(out, "..", "vae-recon-sheet.png"), scale=2, cols=8)
        print("wrote", out, "step", vck.get("step"), "decoder_step", vck.get("decoder_step"))
        return
    unet, text, vae, ck = load(a.ckpt)
    sf = ck["scaling_factor"]
    print(f"checkpoint step {ck['step']}", flush=True)
    if a.mode == "sheet":
        imgs = generate(unet, text, vae, sf, SHEET_PROMPTS, seeds_for(a.seed, 16), a.guidance, a.steps)
        out = a.out or os.path.join(ROOT, "models", "tiny-sd", "contact-sheet.png")
        contact_sheet(imgs, SHEET_PROMPTS, out)
        print("wrote", out)
    elif a.mode == "eval":
        out = a.out or os.path.join(HERE, "runs", f"eval-g{a.guidance:g}{'-heldout' if a.held_out else ''}")
        os.makedirs(out, exist_ok=True)
        caps = [c for c, _ in domain.sample_captions(a.seed, a.n, held_out=a.held_out)]
        seeds = seeds_for(a.seed, a.n)
        items = []
        for b in range(0, a.n, a.batch):
            imgs = generate(unet, text, vae, sf, caps[b:b + a.batch], seeds[b:b + a.batch], a.guidance, a.steps)
            for k, im in enumerate(imgs):
                name = f"{b + k:04d}.png"
                Image.fromarray(im).save(os.path.join(out, name))
                items.append({"file": name, "caption": caps[b + k], "seed": seeds[b + k]})
            print(f"{b + len(imgs)}/{a.n}", flush=True)
        meta = {"checkpoint_step": ck["step"], "guidance": a.guidance, "steps": a.steps, "seed": a.seed,
                "held_out": a.held_out}
        json.dump(items, open(os.path.join(out, "captions.json"), "w"), indent=1)
        json.dump(meta, open(os.path.join(out, "meta.json"), "w"), indent=1)
        print("wrote", out)
    elif a.mode == "attn":
        # forward hooks on every attn2: record output per step; relative change ||o_i - o_{i-1}|| / ||o_{i-1}||
        prompts = SHEET_PROMPTS[:4]
        cur = {"step": 0}
        rec = {}

        def mk(name):
            def hook(mod, inp, outp):
                rec.setdefault(name, {})[cur["step"]] = outp.detach().clone()
            return hook

        hs = []
        for name, mod in unet.named_modules():
            if name.endswith("attn2"):
                hs.append(mod.register_forward_hook(mk(name)))

        def step_hook(i):
            cur["step"] = i

        generate(unet, text, vae, sf, prompts, seeds_for(a.seed, len(prompts)), a.guidance, a.steps, hook=step_hook)
        for h in hs:
            h.remove()
        report = {"checkpoint_step": ck["step"], "prompts": prompts, "guidance": a.guidance, "steps": a.steps,
                  "timesteps": ddim_timesteps(a.steps),
                  "definition": "rel_change[i] = ||attn2_out(step i) - attn2_out(step i-1)|| / ||attn2_out(step i-1)||"
                                " over the whole CFG batch [uncond, cond], per attn2 module",
                  "modules": {}}
        for name, per in rec.items():
            ch = [None]
            for i in range(1, a.steps):
                p, q = per[i - 1], per[i]
                ch.append(round(float((q - p).norm() / p.norm()), 5))
            report["modules"][name] = ch
        allm = np.array([[c for c in v[1:]] for v in report["modules"].values()])
        report["mean_rel_change"] = [None] + [round(float(x), 5) for x in allm.mean(0)]
        out = a.out or os.path.join(HERE, "attn2-convergence.json")
        json.dump(report, open(out, "w"), indent=1)
        print("mean relative change per step:", report["mean_rel_change"])
        print("wrote", out)


if __name__ == "__main__":
    main()
