#!/usr/bin/env bash
# Keep a NAT experiment's results: the `likra nat compare` table (exact McNemar against the first run) as text and
# CSV, each run's metrics and trajectories, and every command with its time.
# Usage: [EVAL=eval-multiarith] results/nat/keep.sh KEEP_DIR RUNS_DIR RUN [RUN ...]
#        (each RUN has its evaluation in RUNS_DIR/RUN/$EVAL/, default eval/)
set -euo pipefail
keep=$1 runs_dir=$2 eval=${EVAL:-eval}; shift 2
evals=()
for name in "$@"; do evals+=("$runs_dir/$name/$eval"); done
mkdir -p "$keep"
COLUMNS=120 .venv/bin/likra nat compare "${evals[@]}" --csv "$keep/compare.csv" | tee "$keep/compare.txt"
for name in "$@"; do
    cp "$runs_dir/$name/$eval/results.json" "$keep/$name.json"
    gzip -nc "$runs_dir/$name/$eval/items.jsonl" > "$keep/$name.items.jsonl.gz"
done
for name in "$@"; do cat "$runs_dir/$name/commands.jsonl" "$runs_dir/$name/$eval/commands.jsonl"; done > "$keep/commands.jsonl"
