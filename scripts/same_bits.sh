#!/bin/bash
# Short runs of every model whose training a refactor may touch, with the disgen source in SRC,
# into OUT (its own DISGEN_HOME). Run it for the code before and after, then compare the two
# folders with scripts/same_bits.py: every checkpoint tensor and metrics.jsonl record must match.
#
#     git archive BASE src | tar -x -C /tmp/before; scripts/same_bits.sh /tmp/before/src /tmp/out-before
#     scripts/same_bits.sh src /tmp/out-after; python scripts/same_bits.py /tmp/out-before /tmp/out-after
set -u
SRC=$(realpath "$1"); OUT=$2
export PYTHONPATH=$SRC OMP_NUM_THREADS=1 DISGEN_HOME=$OUT/home
PY=${PYTHON:-python}
mkdir -p "$OUT/home" "$OUT/faces/b"
# one class of 24 random 64x64 pictures: dcgan64's data (its reference is a fixed random network)
$PY -c "
import numpy as np; from PIL import Image
rng = np.random.default_rng(0)
for i in range(24): Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save('$OUT/faces/b/f%d.png' % i)
"
t() { $PY -m disgen train "$@" --no-progress 2>>"$OUT/log.txt" || echo "FAILED $*"; }
t dcgan28 --preset seed --max-steps 20 --run-dir "$OUT/dcgan28-seed"
t dcgan28 --max-steps 20 --r1 10 --real-label 0.9 --diffaugment --pack 2 --ema 0.99 --run-dir "$OUT/dcgan28-options"
t dcgan64 --preset seed --dataset "$OUT/faces/b" --width 4 --batch-size 4 --epochs 2 --run-dir "$OUT/dcgan64-seed"
t dcgan64 --dataset "$OUT/faces/b" --width 4 --batch-size 4 --epochs 2 --ema 0.9 --run-dir "$OUT/dcgan64-default"
t gan2d --preset seed --epochs 1 --run-dir "$OUT/gan2d-seed"
t gan2d --epochs 1 --ema 0.99 --run-dir "$OUT/gan2d-ema"
t cnn-classifier --preset seed --max-steps 20 --run-dir "$OUT/cnn-seed"
t cnn-classifier --max-steps 20 --label-smoothing 0.1 --run-dir "$OUT/cnn-smooth"
