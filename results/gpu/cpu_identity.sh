#!/usr/bin/env bash
# CPU results before and after a change, compared byte for byte (issue 36: the GPU work must cost CPU users nothing).
# Runs the embedded model in float32 on the CPU: a 16-question training run (its adapters' and optimiser's hashes),
# an evaluation of its step-16 (the items file's hash) and a one-seed curve to 16 questions (curve.csv's hash).
# Usage: bash results/gpu/cpu_identity.sh OUT_FOLDER [LIKRA_COMMAND]   (prints "file sha256" lines, sorted)
set -euo pipefail
out=${1:?usage: cpu_identity.sh OUT_FOLDER [LIKRA_COMMAND]}
likra=${2:-likra}
export HF_HUB_OFFLINE=1
rm -rf "$out" && mkdir -p "$out"
$likra train --n 16 --save-at 8,16 --dtype float32 --out "$out/run" > "$out/train.log" 2>&1
$likra eval --checkpoint "$out/run/step-16" --sample 60 --dtype float32 --items-out "$out/items.jsonl" \
  > "$out/eval.log" 2>&1
$likra curve --max-n 16 --seeds 1 --sample 60 --dtype float32 --out "$out/curve" > "$out/curve.log" 2>&1
cd "$out"
sha256sum run/step-*/*/adapter_model.safetensors run/step-16/optimizer.pt items.jsonl curve/curve.csv \
  curve/scores/*/base.items.jsonl curve/scores/*/seed-1/*.items.jsonl | sort -k2
