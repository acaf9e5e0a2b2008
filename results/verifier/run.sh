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

# Steps 2-5 ran on a 2-core AMD EPYC without AMX or AVX-512 BF16, where bfloat16 scoring is 5x slower than float32:
# they score in float32 (the reference). Step 1's scores are the curve's (bfloat16, AMX machine).

# 2. calibration of seed 1's step-1024 Likra on ARC-Challenge validation (a copy: calibrate writes into it)
[ -d out/verifier/step-1024 ] || { mkdir -p out/verifier && cp -r "$ckpt" out/verifier/; }
[ -f "$keep/calibration/calibration.json" ] || $likra calibrate --checkpoint out/verifier/step-1024 \
    --split validation --dtype float32 --out "$keep/calibration"

# 3. the server under 16 concurrent clients against `likra score` offline on the same 100 questions
[ -f "$keep/serve_load.json" ] || .venv/bin/python benchmarks/serve_load.py --checkpoint out/verifier/step-1024 \
    --clients 16 --seconds 60 --questions 100 --dtype float32 --json "$keep/serve_load.json"

# 3b (issue 39). the same load on each endpoint (score, rerank, reward) behind an API key. Ran on a machine without
# out/arc: heads trained to 64 examples with likra train's defaults (the cost per answer does not depend on how long
# the heads trained)
[ -d out/serve-load/step-64 ] || $likra train --n 64 --out out/serve-load --dtype float32
[ -f "$keep/serve_load_endpoints.json" ] || .venv/bin/python benchmarks/serve_load.py \
    --checkpoint out/serve-load/step-64 --clients 16 --seconds 60 --questions 100 --dtype float32 \
    --json "$keep/serve_load_endpoints.json"
# the same with 180 s windows (the drain of the last engine call weighs a third as much)
[ -f "$keep/serve_load_endpoints_180.json" ] || .venv/bin/python benchmarks/serve_load.py \
    --checkpoint out/serve-load/step-64 --clients 16 --seconds 180 --questions 100 --dtype float32 \
    --json "$keep/serve_load_endpoints_180.json"

# 4. transfer: the same heads on a seeded 500 of MMLU's science subjects (test; 1397 questions in all)
[ -f "$keep/mmlu-science.json" ] || $likra eval --checkpoint "$ckpt" --task mmlu --subjects "$science" \
    --sample 500 --dtype float32 --out "$keep/mmlu-science.json"

# 5. P(True) beside the other verifiers, and DPO's and KTO's rewards, at every checkpoint of seed 1 on a seeded 300 of
#    ARC-Challenge test: results/verifier/steps.sh (its P(True) eval at 1024 examples was this step's)
