#!/usr/bin/env bash
# Two same-seed runs, and one killed with SIGKILL after its step-16 checkpoint and then resumed, end with the
# same adapter bytes; so does step-64 of the 256-question run of run.sh (a larger --n extends a smaller one).
# Run from the repository root after `make install` and run.sh; output in results/likra/determinism.txt.
set -u
export LIKRA_DATA_DIR=../shared/data PATH=$PWD/.venv/bin:$PATH
rm -rf out/demo64a out/demo64b
likra train --n 64 --negatives incorrect --out out/demo64a > /tmp/demo64a.log 2>&1
likra train --n 64 --negatives incorrect --out out/demo64b > /tmp/demo64b.log 2>&1 &
PID=$!
while [ ! -f out/demo64b/step-16/likra.json ]; do sleep 0.2; done
sleep 2
kill -9 $PID; wait $PID 2>/dev/null
echo "after kill:"; ls out/demo64b
likra train --n 64 --negatives incorrect --out out/demo64b > /tmp/demo64b-again.log 2>&1; echo "without --resume exit $?: $(tail -1 /tmp/demo64b-again.log)"
likra train --n 64 --negatives incorrect --out out/demo64b --resume > /tmp/demo64b-resume.log 2>&1; echo "resume exit $?"
grep resumed /tmp/demo64b-resume.log
for h in positive negative; do
  sha256sum out/demo64a/step-64/$h/adapter_model.safetensors out/demo64b/step-64/$h/adapter_model.safetensors out/likra/arc-incorrect-256/step-64/$h/adapter_model.safetensors
done
