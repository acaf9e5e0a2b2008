#!/usr/bin/env bash
# DPO and KTO (TRL) beside SFT, Likra and Base-Likra on ARC-Challenge, and lm-eval through `--model likra`
# (README "Fitting the ecosystem"); every number from a command below. Run from the repository root after
# `make install` and results/arc/run.sh (its seed-1 Likra run and scores are reused: only the baselines train).
# Resumable: re-run after an interruption.
set -euo pipefail
export HF_HUB_OFFLINE=1 LIKRA_DATA_DIR="${LIKRA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
likra=.venv/bin/likra
out=${OUT:-out/arc}
keep=results/arc/baselines
mkdir -p "$keep"

# 1. lm-eval's own loop through the plugin against likra eval, same checkpoint and mode, float32 (exactness).
ckpt="$out/runs/seed-1/step-512"
[ -f "$keep/likra_eval.json" ] || $likra eval --checkpoint "$ckpt" --mode likra --no-calibrate --dtype float32 \
    --out "$keep/likra_eval.json"
[ -d "$keep/lm_eval" ] || $likra lm-eval --model likra --model_args "checkpoint=$ckpt,mode=likra,dtype=float32" \
    --tasks arc_challenge_local --output_path "$keep/lm_eval"

# 2. The curves: the same options as run.sh's seed-1 curve, plus DPO and KTO runs on the same questions.
$likra curve --max-n 1024 --hold-out arc_easy:test --dtype bfloat16 --out "$out" --seeds 1 \
    --methods sft,likra,negbase,dpo,kto,dpo_reward,kto_reward --plot "$keep/curve.png"
cp "$out"/curve.{csv,json} "$out"/commands.jsonl "$keep/"
