#!/usr/bin/env bash
# Issue 20: Likra as a verifier (docs/verifier.md "Results"); every number there comes from a command below.
# Run from the repository root after `make install`, with out/arc holding the ARC curve's seed-1 run to 1024
# (results/arc/run.sh; on a machine without it, restore results/arc/scores as results/claims.sh says and run
# `likra curve --hold-out arc_easy:test --dtype bfloat16 --max-n 1024 --seeds 1 --out out/arc`: it only trains).
# Resumable: re-run after an interruption. SmolLM2-135M-Instruct, heads trained in float32, scored in bfloat16 on a
# 2-core AMX CPU.
set -euo pipefail
export HF_HUB_OFFLINE=1 LIKRA_DATA_DIR="${LIKRA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
likra=.venv/bin/likra
keep=results/verifier
ckpt=out/arc/runs/seed-1/step-1024
science=astronomy,college_biology,college_chemistry,college_physics,conceptual_physics,high_school_biology,high_school_chemistry,high_school_physics

# 1. every method at every checkpoint of the committed 3-seed ARC curve, from stored scores (no model)
.venv/bin/python results/verifier/arc.py > "$keep/arc.md"

# 2. calibration of seed 1's step-1024 Likra on ARC-Challenge validation (a copy: calibrate writes into it)
[ -d out/verifier/step-1024 ] || { mkdir -p out/verifier && cp -r "$ckpt" out/verifier/; }
[ -f "$keep/calibration/calibration.json" ] || $likra calibrate --checkpoint out/verifier/step-1024 \
    --split validation --dtype bfloat16 --out "$keep/calibration"

# 3. transfer: the same heads on MMLU's science subjects (1397 test questions), never seen in training
[ -f "$keep/mmlu-science.json" ] || $likra eval --checkpoint "$ckpt" --task mmlu --subjects "$science" \
    --dtype bfloat16 --out "$keep/mmlu-science.json"

# 4. the server under 16 concurrent clients against `likra score` offline on the same 200 questions
[ -f "$keep/serve_load.json" ] || .venv/bin/python benchmarks/serve_load.py --checkpoint out/verifier/step-1024 \
    --clients 16 --seconds 60 --questions 200 --dtype bfloat16 --json "$keep/serve_load.json"

# 5. P(True) beside them: seed 1's checkpoints on a seeded 500 of ARC-Challenge test (out/arc's runs, shared)
mkdir -p out/arc-ptrue && ln -sfn "$(pwd)/out/arc/runs" out/arc-ptrue/runs
$likra curve --hold-out arc_easy:test --dtype bfloat16 --max-n 1024 --seeds 1 --sample 500 --p-true \
    --methods sft,sft_calibrated,likra,negbase --out out/arc-ptrue
cp out/arc-ptrue/curve.csv "$keep/ptrue-curve.csv" && cp out/arc-ptrue/verifier.png "$keep/ptrue-verifier.png"
