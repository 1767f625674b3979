#!/bin/sh
# Where the tiny-sd training stands: process, last logged steps, checkpoints.
cd "$(dirname "$0")"
echo "== processes"; pgrep -af "train_unet.py|train_vae.py" || echo "no training process running"
echo "== UNet log"; tail -n 3 runs/train_unet.log 2>/dev/null
echo "== loss.csv (step, seconds, loss, lr)"; tail -n 2 loss.csv 2>/dev/null
echo "== checkpoints"; ls -la --time-style=+%F_%T checkpoints/ 2>/dev/null | tail -n +2
