#!/bin/sh
# Exports the latest checkpoint (EMA) to models/tiny-sd, checks it on onnxruntime-node, draws the contact sheet,
# samples the evaluation sets (DDIM 25 steps) and judges them. Results: eval/<name>.json, summary on stdout.
# Usage: tools/tiny-sd/evaluate.sh [n=200]   (run from anywhere; ~10 min on 2 quiet cores for n=200)
set -e
cd "$(dirname "$0")"
N=${1:-200}
CK=${CKPT:-checkpoints/unet.pt}   # e.g. CKPT=checkpoints/unet_step2000.pt for a fixed snapshot
PY=/usr/bin/python3
ROOT=../..
$PY export.py --ckpt "$CK" 2>&1 | grep -v -i warn | tail -3
node check_onnx.mjs
$PY sample.py sheet --ckpt "$CK" --guidance 6
mkdir -p eval
for spec in "g6:6:" "g1:1:" "heldout-g6:6:--held-out"; do
  name=${spec%%:*}; rest=${spec#*:}; g=${rest%%:*}; extra=${rest#*:}
  seed=1; [ -n "$extra" ] && seed=2
  $PY sample.py eval --ckpt "$CK" --n "$N" --seed $seed --guidance "$g" $extra --out runs/eval-$name > /dev/null
  echo "== $name (guidance $g, seed $seed, n $N)"
  node --import tsx $ROOT/packages/judge/src/cli.ts runs/eval-$name
  node --import tsx $ROOT/packages/judge/src/cli.ts runs/eval-$name --json > eval/$name.json
  cp runs/eval-$name/meta.json eval/$name.meta.json
done
$PY sample.py attn --ckpt "$CK" --guidance 6 --out eval/attn2-convergence.json | tail -2
