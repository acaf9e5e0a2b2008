#!/usr/bin/env bash
# The accuracies of the embedded model in the README, each from the command on its line.
# Run from the repository root after `make install` (float32 on the CPU; about 45 minutes on 2 cores).
set -euo pipefail
export HF_HUB_OFFLINE=1 LIKRA_DATA_DIR="${LIKRA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
out=results/embedded
likra=.venv/bin/likra
$likra eval --task arc_challenge                              --out $out/arc_challenge-test-0shot.json
$likra eval --task arc_easy                                   --out $out/arc_easy-test-0shot.json
$likra eval --task arc_challenge --shots 25 --limit 300       --out $out/arc_challenge-test-25shot-first300.json
$likra eval --task winogrande                                 --out $out/winogrande-validation-0shot.json
$likra eval --task hellaswag --sample 2000 --seed 1234        --out $out/hellaswag-validation-0shot-sample2000.json
# the whole MMLU test at 5 shots (lm-eval's first_n shots from dev, per subject; shared prefixes scored once):
# 3103 s of scoring on a 2-core AMD EPYC without AMX, nothing else running (docs/evaluation.md)
$likra eval --task mmlu --shots 5 --no-calibrate --dtype float32 --out $out/mmlu-test-5shot-float32.json \
    --items-out $out/mmlu-test-5shot-float32.items.jsonl && gzip -nf $out/mmlu-test-5shot-float32.items.jsonl
