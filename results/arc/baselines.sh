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

# 3. DPO's learning rate: the curves use Likra's 1e-3 for every method; DPO on the same first 256 questions
#    (seed 1) at 1e-4, 3e-4, 3e-3 and 1e-2, scored as the curve scores (policy: mode sft; implicit reward: posbase).
for lr in 1e-4 3e-4 3e-3 1e-2; do
    run="$out/lr/dpo-lr$lr"
    [ -f "$run/step-256/likra.json" ] || $likra baseline dpo --n 256 --save-at 64,256 --seed 1 --lr "$lr" \
        --hold-out arc_easy:test --dtype bfloat16 --out "$run" --resume
    [ -f "$keep/dpo-lr$lr.json" ] || $likra eval --checkpoint "$run/step-256" --dtype bfloat16 --no-calibrate \
        --out "$keep/dpo-lr$lr.json"
done

# 4. DPO and KTO at the best learning rate of step 3 (3e-3) on the 1024 questions of the curve, scored at 1024.
for method in dpo kto; do
    run="$out/lr/$method-lr3e-3-1024"
    [ -f "$run/step-1024/likra.json" ] || $likra baseline "$method" --n 1024 --save-at 256,1024 --seed 1 --lr 3e-3 \
        --hold-out arc_easy:test --dtype bfloat16 --out "$run" --resume
    [ -f "$keep/$method-lr3e-3-1024.json" ] || $likra eval --checkpoint "$run/step-1024" --dtype bfloat16 \
        --no-calibrate --out "$keep/$method-lr3e-3-1024.json" --items-out "$run/step-1024.items.jsonl"
done

# 5. Likra (seed 1, 1024 questions) against those four, question by question: exact McNemar p → paired.json.
.venv/bin/python - "$out" > "$keep/paired.json" <<'PY'
import json, sys
from pathlib import Path
from likra.evaluation import read_items
from likra.metrics import combine, correct, mcnemar_exact

out = Path(sys.argv[1])
hits = lambda path, mode: correct([combine(s, mode) for s in read_items(path)], "acc_norm")
likra = hits(out / "scores/arc_challenge-test/seed-1/step-1024.items.jsonl", "likra")
rows = {}
for method in ("dpo", "kto"):
    for mode, name in (("sft", method), ("posbase", f"{method}_reward")):
        other = hits(out / f"lr/{method}-lr3e-3-1024/step-1024.items.jsonl", mode)
        rows[f"{name} lr 3e-3"] = {"accuracy": sum(other) / len(other), "p_vs_likra": mcnemar_exact(likra, other)}
print(json.dumps({"likra": sum(likra) / len(likra), "n": len(likra), "examples": 1024, **rows}, indent=2))
PY
