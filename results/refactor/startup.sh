#!/usr/bin/env bash
# The CLI's fixed start-up (issue 37): `likra --help`, `likra eval --help`, a mistyped option, and `likra eval` on
# one question (imports + model load + one question scored), each run REPEATS times; prints the median seconds.
# Usage: bash results/refactor/startup.sh [REPEATS]   (run on an idle machine; PYTHONPATH picks the code to time)
set -uo pipefail
repeats=${1:-5}
export HF_HUB_OFFLINE=1 LIKRA_NATIVE_BF16=0
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.2f}')" "$@"; }
time_of() {
  local times=()
  for _ in $(seq "$repeats"); do
    local start end
    start=$(date +%s.%N); "$@" > /dev/null 2>&1; end=$(date +%s.%N)
    times+=("$(python3 -c "print($end - $start)")")
  done
  median "${times[@]}"
}
echo "likra --help: $(time_of likra --help) s"
echo "likra eval --help: $(time_of likra eval --help) s"
echo "likra eval --bogus (mistyped option): $(time_of likra eval --bogus) s"
echo "likra eval --limit 1 --no-calibrate (float32): $(time_of likra eval --limit 1 --no-calibrate --dtype float32) s"
echo "import likra.cli: $(cd / && python -c 'import time; t = time.perf_counter(); import likra.cli; print(f"{time.perf_counter() - t:.2f}")') s"
