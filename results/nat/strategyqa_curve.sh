#!/usr/bin/env bash
# Issue 22, NAT's main figure on StrategyQA (docs/nat.md "Accuracy against negatives"): the agent's accuracy as the
# NAT release's negatives join 256 positives, NAT's negative-aware prefix against plain mixing, every number from
# the command below. Run from the repository root after `make install`. Resumable: each run saves every 128
# trajectories and resumes from its newest checkpoint, each evaluation from its last finished chunk of 32 problems,
# and finished pieces are skipped; re-run after an interruption (a session here holds ~3 h of CPU; the five runs
# take ~4 h).
#
# The same settings as strategyqa.sh's three agents (the same seeded 256 positives; seed 1234; lr 5e-4; greedy, at
# most 6 steps; a seeded 200 of test_random_500) with negatives 0, 256 and all (990), but in float32 throughout
# (training and generation): this machine, a 2-core AMD EPYC without AMX, runs bfloat16 5x slower than float32.
# On a machine with AMX, `--bf16 --dtype bfloat16` would reproduce strategyqa.sh's runs, and its finished ones could
# be reused by linking them in: out/nat/sqa/pos-only as runs/pos-only-seed-1234, nat as
# runs/negative-aware-neg-256-seed-1234, mix as runs/none-neg-256-seed-1234 (a finished evaluation with the same
# options is not redone).
set -euo pipefail
export HF_HUB_OFFLINE=1 LIKRA_DATA_DIR="${LIKRA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
likra=.venv/bin/likra
out=${OUT:-out/nat}/sqa-curve
release="$LIKRA_DATA_DIR/nat/strategyqa/strategyqa_gpt-3.5"

$likra nat curve --task strategyqa --pos "$release"_positive.json --neg "$release"_negative.json --pos-num 256 \
    --neg-nums 0,256,all --templates negative-aware,none --seeds 1234 \
    --sample 200 --seed 1234 --max-steps 6 --dtype float32 --out "$out"

# Keep the curve (CSV, JSON, figure), each run's evaluation (metrics and every trajectory) and the commands.
keep=results/nat/strategyqa-curve
mkdir -p "$keep"
cp "$out"/curve.csv "$out"/curve.json "$out"/curve.png "$keep"/
for run in "$out"/runs/*/; do
    name=$(basename "$run")
    cp "$run/eval/results.json" "$keep/$name.json"
    gzip -nc "$run/eval/items.jsonl" > "$keep/$name.items.jsonl.gz"
done
cat "$out"/commands.jsonl "$out"/runs/*/commands.jsonl 2>/dev/null > "$keep/commands.jsonl" || true
