#!/bin/sh
# Regenerates the committed test models and their golden streams (run from anywhere;
# needs /usr/bin/python3 with python3-torch). Deterministic: same seeds, fixed date.
set -e
cd "$(dirname "$0")/.."
PY="/usr/bin/python3 -m nystream_ref.export"
TINY="--window 16 --landmarks 4 --input-dim 8 --embed-dim 16 --heads 2 --ff-dim 32 --classes 3 --period 35 --date 2026-11-27"
$PY random $TINY --schedule continual --blocks 1 --seed 1 --name tiny-continual --out test/tiny-continual.safetensors
$PY random $TINY --schedule fixed --blocks 2 --seed 2 --name tiny-fixed-2blocks --out test/tiny-fixed-2blocks.safetensors
for m in tiny-continual tiny-fixed-2blocks; do
  $PY golden --model test/$m.safetensors --steps 83 --seed 3 --features test/$m.features.npy --logits test/$m.logits.npy
done
