#!/usr/bin/env bash
# Issue 20: P(True) and DPO's and KTO's implicit rewards as verifiers at every checkpoint (docs/verifier.md "At
# every checkpoint"), beside Likra and SFT on the same questions. Run from the repository root after run.sh (it
# needs out/arc/runs/seed-1, the ARC curve's seed-1 run to 1024). Resumable: re-run after an interruption.
# Seed 1 only, on the seeded 300 of ARC-Challenge test that run.sh's step 5 uses, scored in float32 (the reference;
# DPO ran on a 2-core AMD EPYC, KTO and P(True) on a 2-core AMX Xeon, each P(True) evaluation ~12 min with one
# thread there). Then `python results/verifier/steps.py`.
set -euo pipefail
export HF_HUB_OFFLINE=1 LIKRA_DATA_DIR="${LIKRA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
likra=.venv/bin/likra
keep=results/verifier/steps
mkdir -p "$keep"
steps=(8 16 32 64 128 256 512 1024)

# 1. DPO and KTO (TRL) on seed 1's questions of the ARC pool to 1024, lr 3e-3 (the best of results/arc/baselines.sh's
#    sweep; constant, so step-256 is baselines.sh's run), saved at every count; each checkpoint scored (no P(True):
#    the rewards are the point)
for method in dpo kto; do
    run="out/verifier/$method"
    [ -f "$run/step-1024/likra.json" ] || $likra baseline "$method" --n 1024 --seed 1 --lr 3e-3 \
        --hold-out arc_easy:test --out "$run" --resume
    for k in "${steps[@]}"; do
        [ -f "$keep/$method-step-$k.json" ] || $likra eval --checkpoint "$run/step-$k" --sample 300 --no-calibrate \
            --dtype float32 --out "$keep/$method-step-$k.json"
    done
done

# 2. P(True) under the base model, SFT (the positive head) and the negative head, with every other method, at
#    every checkpoint of the Likra run
for k in "${steps[@]}"; do
    [ -f "$keep/ptrue-step-$k.json" ] || $likra eval --checkpoint "out/arc/runs/seed-1/step-$k" --p-true \
        --sample 300 --dtype float32 --out "$keep/ptrue-step-$k.json"
done
