#!/usr/bin/env bash
# The GSM8K NAT experiment under results/nat/ (README "NAT results"), every number from a command below.
# Run from the repository root after `make install`; resumable like strategyqa.sh (re-run after an interruption).
#
# The embedded 135M model does not follow the Thought/Action format from an instruction, even with two solved
# examples in the prompt (0 of 6 train problems, every turn an invalid action), so collection starts from a
# first agent taught the format on GSM8K's reference solutions; it collects on *other* training questions.
set -euo pipefail
export HF_HUB_OFFLINE=1 LIKRA_DATA_DIR="${LIKRA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
likra=.venv/bin/likra
out=${OUT:-out/nat}/gsm8k
eval_opts=(--task gsm8k --sample 100 --seed 1234 --max-steps 8 --dtype bfloat16)
multiarith_opts=(--task multiarith --sample 100 --seed 1234 --max-steps 8 --dtype bfloat16)

# 1. A first agent: 1000 reference solutions (calculator annotations as Actions), positives only.
[ -f "$out/gold.jsonl" ] || $likra nat gold --task gsm8k --sample 1000 --seed 1234 --out "$out/gold.jsonl"
$likra nat train --task gsm8k --pos "$out/gold.jsonl" --template none --bf16 --save-at 250,500,750 --resume \
    --out "$out/warm"
# 2. NAT data: its trajectories on 200 other training questions, greedy and sampled (~1 h here: an episode
#    takes ~6 s of 2 CPU cores, most hit the 8-step limit).
$likra nat collect --task gsm8k --checkpoint "$out/warm" --skip "$out/gold.jsonl" --sample 200 --seed 1234 \
    --temperatures 0,0.7,1 --max-steps 8 --dtype bfloat16 --out "$out/collect"
# 3. The base model trained on the collected data: positives only, NAT, plain mixing.
train() {
    local name=$1; shift
    $likra nat train --task gsm8k --pos "$out/collect/positive.jsonl" --neg "$out/collect/negative.jsonl" \
        --bf16 --resume --out "$out/$name" "$@"
}
# (negatives capped at 300, a seeded sample, to keep each training near 10 minutes here)
train pos-only --neg-num 0 --template none
train nat --neg-num 300 --template negative-aware
train mix --neg-num 300 --template none
# 4. All four agents on a seeded 100 of the 1319 test problems (~10-35 min each: an agent that never finishes runs
#    all 8 steps of every episode).
for name in warm pos-only nat mix; do
    $likra nat eval --checkpoint "$out/$name" --out "$out/$name/eval" "${eval_opts[@]}"
done
# The table (exact McNemar against positives only; the first agent for reference), each run's metrics,
# trajectories and commands, and the collection's summary.
bash results/nat/keep.sh results/nat/gsm8k "$out" pos-only nat mix warm
cp "$out/collect/collect.json" results/nat/gsm8k/collect.json

# 5. The collector solved 8 of 200 problems, too few positives to teach anything, and GSM8K is out of reach at 135M
#    (the first agent solves none of its 100). So the same comparison once more with 200 of the reference-solution
#    episodes as positives in every run and 200 of the same collected negatives for NAT and mixing, scored on a
#    seeded 100 of MultiArith's 600 (two-step word problems, one of the paper's math sets).
gold() {
    local name=$1; shift
    $likra nat train --task gsm8k --pos "$out/gold.jsonl" --neg "$out/collect/negative.jsonl" --pos-num 200 \
        --bf16 --resume --out "$out/$name" "$@"
}
gold gold-pos-only --neg-num 0 --template none
gold gold-nat --neg-num 200 --template negative-aware
gold gold-mix --neg-num 200 --template none
for name in warm gold-pos-only gold-nat gold-mix; do
    $likra nat eval --checkpoint "$out/$name" --out "$out/$name/eval-multiarith" "${multiarith_opts[@]}"
done
EVAL=eval-multiarith bash results/nat/keep.sh results/nat/gsm8k/gold-multiarith "$out" gold-pos-only gold-nat \
    gold-mix warm
