#!/usr/bin/env bash
# Likra on ARC-Challenge with the embedded model: train both heads on 256 questions with `incorrect`
# negatives, then score checkpoints on the full ARC-Challenge test (1172 questions) in all five modes.
# Run from the repository root after `make install`, with LIKRA_DATA_DIR=../shared/data.
# The final checkpoint is scored in float32 (the reference); earlier ones in bfloat16 (about 2x faster, moves
# about 1% of answers; see the README).
set -euo pipefail
RUN=out/likra/arc-incorrect-256
OUT=results/likra
likra train --n 256 --negatives incorrect --seed 1234 --out "$RUN" | tee "$OUT/train.txt"
cp "$RUN/step-256/likra.json" "$OUT/step-256.likra.json"
cp "$RUN/train_log.jsonl" "$OUT/train_log.jsonl"
likra eval --checkpoint "$RUN/step-256" --out "$OUT/step-256-float32.json" --items-out "$OUT/step-256-float32.items.jsonl"
for K in 8 16 32 64 128; do
  likra eval --checkpoint "$RUN/step-$K" --dtype bfloat16 --out "$OUT/step-$K-bfloat16.json"
done
