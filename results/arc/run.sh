#!/usr/bin/env bash
# The ARC reproduction under results/arc/ (README "Results"), every number from a command below.
# Run from the repository root after `make install`. Every step is resumable: re-run this script after an
# interruption and it skips the training and scoring already on disk (about 4 hours on 2 CPU cores).
# Heads train in float32; scoring runs in bfloat16 (same answers as float32 on the checks in README).
set -euo pipefail
export HF_HUB_OFFLINE=1 LIKRA_DATA_DIR="${LIKRA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
likra=.venv/bin/likra
out=${OUT:-out/arc}
# The paper's pool (ARC-Easy all splits + ARC-Challenge train/dev) minus ARC-Easy test, so that the same heads
# are scored on ARC-Challenge test and on ARC-Easy test without having trained on either.
common=(--max-n 1024 --hold-out arc_easy:test --dtype bfloat16 --out "$out")

# seed 1 first, so every experiment has a first result early; then seeds 2 and 3
$likra curve "${common[@]}" --seeds 1                                  # ARC-Challenge test (1172)
$likra curve "${common[@]}" --seeds 1 --eval-task arc_easy             # ARC-Easy test (2376), same heads
$likra mass --checkpoint "$out/runs/seed-1" --out "$out/mass" --dtype bfloat16   # 300 seeded test questions
$likra ablate "${common[@]}" --seeds 1 --negatives incorrect,irrelevant,unrelated,hardest,easiest
$likra curve "${common[@]}" --seeds 3                                  # seeds 2 and 3 on ARC-Challenge
$likra sweep --items "$(ls "$out"/scores/arc_challenge-test/seed-*/step-1024.items.jsonl | paste -sd,)" \
    --weights 0:1.5:0.1 --out "$out/sweep"
$likra report "$out"

# the small outputs are committed (runs and per-item scores stay in out/)
mkdir -p results/arc
cp "$out"/{curve,ablate}.{csv,json,png} "$out"/report.{html,md} "$out"/commands.jsonl results/arc/
for part in mass sweep; do mkdir -p "results/arc/$part"; cp "$out/$part"/$part.{csv,json,png} "results/arc/$part/"; done
