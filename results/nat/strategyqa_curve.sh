#!/usr/bin/env bash
# Issue 22, NAT's main figure on StrategyQA (docs/nat.md "Accuracy against negatives"): the agent's accuracy as the
# NAT release's negatives join 256 positives, NAT's negative-aware prefix against plain mixing, every number from
# the command below. Run from the repository root after `make install`. Resumable: each run saves every 128
# trajectories and resumes from its newest checkpoint, each evaluation from its last finished chunk of 32 problems,
# and finished pieces are skipped; re-run after an interruption (a session here holds ~3 h of CPU).
#
# The same settings as strategyqa.sh's three agents (the same seeded 256 positives; seed 1234; lr 5e-4; greedy, at
# most 6 steps; a seeded 200 of test_random_500; bfloat16 autocast in training, bfloat16 generation) with negatives
# 0, 256 and all (990), so the three agents of results/nat/strategyqa/ are three of the curve's five points: their
# committed evaluations are put in place first (a finished evaluation with the same options is not redone), and only
# the two runs on all negatives are trained here (~70 min each on a 2-core AMX Xeon: 0.2-0.4 trajectories/s,
# the negatives' episodes being long; ~10 min per evaluation).
# bfloat16 needs a CPU with AMX (or a GPU) to be fast: a 2-core AMD EPYC without AMX runs it 5x slower than float32.
# There, DTYPE=float32 trains and evaluates all five points in float32 (~4 h; the committed evaluations are not
# reused, their options differ).
set -euo pipefail
export HF_HUB_OFFLINE=1 LIKRA_DATA_DIR="${LIKRA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
likra=.venv/bin/likra
out=${OUT:-out/nat}/sqa-curve
release="$LIKRA_DATA_DIR/nat/strategyqa/strategyqa_gpt-3.5"

dtype=${DTYPE:-bfloat16}
if [ "$dtype" = bfloat16 ]; then
    train_opts=(--bf16)
    # strategyqa.sh's agents are the curve's runs with 0 and 256 negatives: their evaluations, as committed
    for pair in pos-only:pos-only-seed-1234 nat:negative-aware-neg-256-seed-1234 mix:none-neg-256-seed-1234; do
        eval_dir="$out/runs/${pair#*:}/eval"
        [ -f "$eval_dir/results.json" ] && continue
        mkdir -p "$eval_dir"
        gunzip -c "results/nat/strategyqa/${pair%%:*}.items.jsonl.gz" > "$eval_dir/items.jsonl"
        cp "results/nat/strategyqa/${pair%%:*}.json" "$eval_dir/results.json"
    done
else
    train_opts=()
fi

$likra nat curve --task strategyqa --pos "$release"_positive.json --neg "$release"_negative.json --pos-num 256 \
    --neg-nums 0,256,all --templates negative-aware,none --seeds 1234 "${train_opts[@]}" \
    --sample 200 --seed 1234 --max-steps 6 --dtype "$dtype" --out "$out"

# Keep the curve (CSV, JSON, figure), each run's evaluation (metrics and every trajectory) and the commands.
keep=results/nat/strategyqa-curve
mkdir -p "$keep"
cp "$out"/curve.csv "$out"/curve.json "$out"/curve.png "$keep"/
for run in "$out"/runs/*/; do
    name=$(basename "$run")
    cp "$run/eval/results.json" "$keep/$name.json"
    gzip -nc "$run/eval/items.jsonl" > "$keep/$name.items.jsonl.gz"
done
# (the reused agents' commands are strategyqa.sh's, in results/nat/strategyqa/commands.jsonl)
cat "$out"/commands.jsonl "$out"/runs/*/commands.jsonl 2>/dev/null > "$keep/commands.jsonl" || true
