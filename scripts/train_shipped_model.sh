#!/usr/bin/env bash
# Reproduces the shipped model directory models/tiny: simulator data, anchors, two training stages, export,
# closed-loop eval. About 3 h on 2 CPU cores. Usage: scripts/train_shipped_model.sh [WORK_DIR]
set -euo pipefail
WORK=${1:-runs/shipped_tiny}
DD=${DD:-diffusiondrive}
MODEL=models/tiny
# One intra-op thread: on a busy 2-core machine torch's spinning OpenMP barriers made 2 threads 10x slower.
export OMP_NUM_THREADS=1

generate() {  # the default expert: the evaluation's IDM route follower through the LQR tracker (docs/simulation.md)
    $DD data generate --scenes "$1" --seed 0 --workers 2 --out "$WORK/data" --config tiny --samples-per-scene 30 \
        --perturb --expert tracked
}

# Stage 1: 230 scenes, 16 epochs from scratch.
generate 230
$DD anchors --data "$WORK/data" --k 20 --out "$WORK/data/anchors.npy" --plot "$WORK/data/anchors.png"
$DD train --config tiny --data "$WORK/data" --out "$WORK/stage1" --epochs 16 --batch-size 32 --lr 4e-4 \
    --warmup-epochs 0.5 --workers 0 --seed 0
# Stage 2: the data set resumed to 400 scenes (the validation split is by scene, so stage 1's validation scenes stay
# out of training), 8 epochs fine-tuned from stage 1 with its anchors.
generate 400
$DD train --data "$WORK/data" --out "$WORK/stage2" --init-from "$WORK/stage1/checkpoints/best.safetensors" \
    --epochs 8 --batch-size 32 --lr 1.5e-4 --warmup-epochs 0.3 --workers 0 --seed 1
# Stage 3 (generalization, DAgger round 1): expert data on the 'diverse' scene distribution (every block type, 1-4
# lanes, 6-25 m/s, generated SUMO networks) and on-policy data of the stage-2 planner on other 'diverse' seeds,
# labelled by the tracked expert; 4 epochs fine-tuned from stage 2 on both. The data keep the stage-2 model's own
# config (LiDAR range 32 m), since --init-from keeps the checkpoint's config.
$DD export --model "$WORK/stage2/checkpoints/best.safetensors" --model-dir "$WORK/stage2_model" \
    --noise-scale 0.5 --smoothing polynomial
$DD data generate --distribution diverse --perturb --scenes 132 --seed 0 --workers 1 \
    --config "$WORK/stage2_model/model.yaml" --out "$WORK/diverse"
$DD data dagger --model "$WORK/stage2_model" --config "$WORK/stage2_model/model.yaml" --distribution diverse \
    --scenes 200 --seed 20000 --workers 1 --out "$WORK/dagger1"
$DD train --data "$WORK/diverse" "$WORK/dagger1" --out "$WORK/stage3" \
    --init-from "$WORK/stage2/checkpoints/best.safetensors" --epochs 4 --batch-size 32 --lr 1.5e-4 \
    --warmup-epochs 0.3 --workers 0 --seed 1
# The shipped deployment settings (models/tiny/README.md has the scores with and without them).
$DD export --model "$WORK/stage3/checkpoints/best.safetensors" --model-dir "$MODEL" \
    --noise-scale 0.5 --smoothing polynomial
cp "$WORK/data/anchors.png" "$MODEL/"
cp "$WORK/stage1/training_curves.png" "$MODEL/training_curves.png"
cp "$WORK/stage1/history.csv" "$MODEL/training_history.csv"
cp "$WORK/stage2/training_curves.png" "$MODEL/finetune_curves.png"
cp "$WORK/stage2/history.csv" "$MODEL/finetune_history.csv"
cp "$WORK/stage3/training_curves.png" "$MODEL/dagger1_curves.png"
cp "$WORK/stage3/history.csv" "$MODEL/dagger1_history.csv"
$DD eval --scenes generalization --backend onnxruntime --model "$MODEL" --out "$WORK/eval_generalization"
$DD eval --scenes benchmark --backend onnxruntime --model "$MODEL" --out "$WORK/eval" --camera-width 960
