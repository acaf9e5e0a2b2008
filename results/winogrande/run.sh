#!/usr/bin/env bash
# Likra learning curves on Winogrande (README "Results"): heads trained on train_l (10234 sentences, the
# largest training size offline), scored on the full validation split (1267). Resumable; ~30 min on 2 cores.
set -euo pipefail
export HF_HUB_OFFLINE=1 LIKRA_DATA_DIR="${LIKRA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
likra=.venv/bin/likra
out=${OUT:-out/winogrande}
$likra curve --task winogrande --max-n 1024 --seeds 1 --dtype bfloat16 --out "$out"
$likra report "$out"
cp "$out"/curve.{csv,json,png} "$out"/report.{html,md} "$out"/commands.jsonl results/winogrande/
