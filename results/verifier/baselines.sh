#!/usr/bin/env bash
# Issue 20: DPO's and KTO's implicit rewards as verifiers (docs/verifier.md), beside Likra at the same N on the same
# questions (results/verifier/ptrue-step-256.json from run.sh step 5). Run from the repository root after run.sh.
# DPO and KTO (TRL) on seed 1's first 256 questions of the ARC pool at lr 3e-3 (the best of results/arc/baselines.sh's
# sweep), scored in float32 on the seeded 300 of ARC-Challenge test that run.sh's step 5 uses (2-core AMD EPYC).
set -euo pipefail
export HF_HUB_OFFLINE=1 LIKRA_DATA_DIR="${LIKRA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
likra=.venv/bin/likra
keep=results/verifier
for method in dpo kto; do
    run="out/verifier/$method-256"
    [ -f "$run/step-256/likra.json" ] || $likra baseline "$method" --n 256 --save-at 256 --seed 1 --lr 3e-3 \
        --hold-out arc_easy:test --out "$run" --resume
    [ -f "$keep/$method-step-256.json" ] || $likra eval --checkpoint "$run/step-256" --sample 300 --no-calibrate \
        --dtype float32 --out "$keep/$method-step-256.json"
done
# Likra's own step-256 (seed 1, the curve's run) on the same 300 questions, the row to compare with
[ -f "$keep/likra-step-256.json" ] || $likra eval --checkpoint out/arc/runs/seed-1/step-256 --sample 300 \
    --no-calibrate --dtype float32 --out "$keep/likra-step-256.json"
