"""Plot tools/tiny-sd/loss.csv (UNet) to tools/tiny-sd/loss.png with PIL only (no matplotlib here).

    /usr/bin/python3 tools/tiny-sd/plot_loss.py
"""
import csv
import math
import os

from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    rows = list(csv.DictReader(open(os.path.join(HERE, "loss.csv"))))
    if not rows:
        print("no rows")
        return
    steps = [int(r["step"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    # smooth with a running mean over 10 points
    sm = [sum(loss[max(0, i - 9):i + 1]) / len(loss[max(0, i - 9):i + 1]) for i in range(len(loss))]
    W, H, L, B, T, R = 720, 420, 60, 40, 30, 20
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    lo, hi = math.log10(max(min(sm), 1e-4)), math.log10(max(loss[:5] + sm))
    lo = math.floor(lo * 10) / 10
    hi = math.ceil(hi * 10) / 10
    x_max = max(steps)

    def X(s):
        return L + (W - L - R) * s / max(1, x_max)

    def Y(v):
        return T + (H - T - B) * (hi - math.log10(max(v, 1e-6))) / max(1e-6, hi - lo)

    d.rectangle([L, T, W - R, H - B], outline="black")
    k = lo
    while k <= hi + 1e-9:
        y = Y(10 ** k)
        d.line([L, y, W - R, y], fill=(225, 225, 225))
        d.text((4, y - 6), f"{10 ** k:.3f}", fill="black")
        k += 0.1 if hi - lo <= 1 else 0.5
    for i in range(6):
        s = x_max * i / 5
        d.text((X(s) - 10, H - B + 6), f"{int(s)}", fill="black")
    d.line([(X(s), Y(v)) for s, v in zip(steps, loss)], fill=(170, 190, 240), width=1)
    d.line([(X(s), Y(v)) for s, v in zip(steps, sm)], fill=(20, 60, 200), width=2)
    d.text((L + 8, 8), f"tiny-sd UNet training loss (eps MSE, log scale), step {x_max}, last {sm[-1]:.4f}",
           fill="black")
    img.save(os.path.join(HERE, "loss.png"))
    print("wrote loss.png", x_max, sm[-1])


if __name__ == "__main__":
    main()
