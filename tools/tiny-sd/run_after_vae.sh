#!/bin/sh
# Waits for the VAE training process (pid in runs/train_vae.pid) to finish, then starts the UNet training
# (which first encodes the latent dataset). Used once on the first build; afterwards just run train_unet.py --resume.
cd "$(dirname "$0")"
while kill -0 "$(cat runs/train_vae.pid)" 2>/dev/null; do sleep 10; done
exec /usr/bin/python3 train_unet.py --resume >> runs/train_unet.log 2>&1
