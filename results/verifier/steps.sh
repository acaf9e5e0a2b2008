#!/usr/bin/env bash
# Issue 20: P(True) and DPO's and KTO's implicit rewards as verifiers at every checkpoint (docs/verifier.md "At
# every checkpoint"), beside Likra and SFT on the same questions. Run from the repository root after run.sh (it
# needs out/arc/runs/seed-1, the ARC curve's seed-1 run to 1024). Resumable: re-run after an interruption.
# Seed 1 only. Steps 1-2 on the seeded 300 of ARC-Challenge test that run.sh's step 5 uses, scored in float32
# (the reference; DPO ran on a 2-core AMD EPYC, KTO and P(True) on a 2-core AMX Xeon, each P(True) evaluation ~12
# min with one thread there), then `python results/verifier/steps.py`; step 3 on the whole test in bfloat16.
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

# 3. The same on the full ARC-Challenge test (1172 questions), scored in bfloat16 like the curve (2-core AMX Xeon):
#    a curve over seed 1's Likra run with P(True) (the run linked in, not trained again), and one over the baselines
#    (P(True) is for the base model and SFT: not asked of DPO's and KTO's policies) with step 1's KTO run linked in
#    and DPO trained by the curve (step 1's settings; step 1's DPO ran on another machine)
link() {  # link() RUN FOLDER: RUN's checkpoints 8…1024 into FOLDER
    mkdir -p "$2"
    for k in "${steps[@]}"; do ln -sfn "$PWD/$1/step-$k" "$2/step-$k"; done
}
link out/arc/runs/seed-1 out/arc-verifier/runs/seed-1
link out/verifier/kto out/arc-verifier-baselines/runs/kto-seed-1
full=(--hold-out arc_easy:test --dtype bfloat16 --max-n 1024 --seeds 1)
$likra curve "${full[@]}" --p-true --methods sft,sft_calibrated,likra,negbase --out out/arc-verifier
$likra curve "${full[@]}" --baseline-lr 3e-3 --methods dpo,kto,dpo_reward,kto_reward --out out/arc-verifier-baselines
for name in arc-verifier arc-verifier-baselines; do
    mkdir -p "$keep/$name"
    cp out/$name/curve.csv out/$name/curve.json out/$name/curve.png out/$name/verifier.png "$keep/$name/"
done
