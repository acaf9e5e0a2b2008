#!/usr/bin/env bash
# The StrategyQA NAT experiment under results/nat/strategyqa/ (README "NAT results"), every number from a
# command below.
# Run from the repository root after `make install`. Resumable: training resumes from its last checkpoint
# (--resume) and evaluation from its last finished chunk of 32 problems; re-run after an interruption.
# Agents train with bfloat16 autocast (float32 weights) and generate in bfloat16 (greedy).
set -euo pipefail
export HF_HUB_OFFLINE=1 LIKRA_DATA_DIR="${LIKRA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
likra=.venv/bin/likra
out=${OUT:-out/nat}
release="$LIKRA_DATA_DIR/nat/strategyqa/strategyqa_gpt-3.5"
eval_opts=(--sample 200 --seed 1234 --max-steps 6 --dtype bfloat16)

train() {  # name, then options; --resume on a finished run only replays its schedule
    local name=$1; shift
    $likra nat train --task strategyqa --out "$out/sqa/$name" --pos "$release"_positive.json \
        --neg "$release"_negative.json --bf16 --save-at 128,256,384 --resume "$@"
}

# StrategyQA, GPT-3.5 trajectories of the NAT release (825 positives and 990 negatives once the 511 trajectories
# of test questions are dropped); the same seeded 256 positives in every run, and 256 negatives for NAT and
# plain mixing; scored on a seeded sample of 200 of test_random_500.
train pos-only --pos-num 256 --neg-num 0 --template none
train nat --pos-num 256 --neg-num 256 --template negative-aware
train mix --pos-num 256 --neg-num 256 --template none
for name in pos-only nat mix; do
    $likra nat eval --task strategyqa --checkpoint "$out/sqa/$name" --out "$out/sqa/$name/eval" "${eval_opts[@]}"
done
# (The untrained model is left out for time: an agent that does not finish runs all 6 steps of every episode,
#  ~35 min here. To add it, and then `base` to the keep line below:
#  $likra nat eval --task strategyqa --template none --out "$out/sqa/base/eval" "${eval_opts[@]}")

# The table (exact McNemar against positives only), each run's metrics, trajectories and commands.
bash results/nat/keep.sh results/nat/strategyqa "$out/sqa" pos-only nat mix
