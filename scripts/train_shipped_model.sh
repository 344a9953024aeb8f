#!/usr/bin/env bash
# Reproduces the shipped model directory models/tiny: simulator data, anchors, training, export, closed-loop eval.
# About 1.5 h on 2 idle CPU cores. Usage: scripts/train_shipped_model.sh [WORK_DIR] [EPOCHS] [SCENES]
set -euo pipefail
WORK=${1:-runs/shipped_tiny}
EPOCHS=${2:-16}
SCENES=${3:-230}
DD=${DD:-diffusiondrive}
MODEL=models/tiny

# The default expert: the evaluation's IDM route follower driven through the LQR tracker (docs/simulation.md).
$DD data generate --scenes "$SCENES" --seed 0 --workers 2 --out "$WORK/data" --config tiny --samples-per-scene 30 \
    --perturb --expert tracked
$DD anchors --data "$WORK/data" --k 20 --out "$WORK/data/anchors.npy" --plot "$WORK/data/anchors.png"
# One intra-op thread: on a busy 2-core machine torch's spinning OpenMP barriers made 2 threads 10x slower.
OMP_NUM_THREADS=1 $DD train --config tiny --data "$WORK/data" --out "$WORK/run" --epochs "$EPOCHS" --batch-size 32 \
    --lr 4e-4 --warmup-epochs 0.5 --workers 0 --seed 0
# The shipped deployment settings (models/tiny/README.md has the scores with and without them).
$DD export --checkpoint "$WORK/run/checkpoints/best.safetensors" --model-dir "$MODEL" \
    --noise-scale 0.5 --smoothing polynomial
cp "$WORK/run/training_curves.png" "$WORK/data/anchors.png" "$MODEL/"
$DD eval --scenes benchmark --backend onnxruntime --model "$MODEL" --out "$WORK/eval" --camera-width 960
