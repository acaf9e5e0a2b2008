#!/usr/bin/env bash
# Outputs before and after a refactor, compared byte for byte (issue 37: moving code must change no number).
# On MODEL (default: the embedded SmolLM2-135M; `tiny` builds the suite's tiny random Llama with the real
# tokenizer), float32 on the CPU: training (8 questions, then resumed and extended to 16: adapters, optimiser,
# manifest), evaluation items, a one-seed curve's CSV and items, `likra score`, the server's /score answer (its
# random id and time removed) and the lm-eval plugin's numbers. Run before and after into the same OUT_FOLDER
# (paths are recorded in manifests), moving the first away.
# Usage: bash results/refactor/identity.sh OUT_FOLDER [MODEL]   (prints "sha256  file" lines, sorted)
set -euo pipefail
out=${1:?usage: identity.sh OUT_FOLDER [MODEL]}
model=${2:-smollm2-135m}
here=$(cd "$(dirname "$0")/../.." && pwd)
export HF_HUB_OFFLINE=1 LIKRA_NATIVE_BF16=0
rm -rf "$out" && mkdir -p "$out" && out=$(cd "$out" && pwd)
if [ "$model" = tiny ]; then
  python - "$out/tiny" "$here" <<'PY'
import sys
sys.path.insert(0, sys.argv[2] + "/tests")
from conftest import tiny_llama
from likra.models import load_tokenizer, prepare_embedded
tokenizer = load_tokenizer(str(prepare_embedded()))
tiny_llama(len(tokenizer)).save_pretrained(sys.argv[1])
tokenizer.save_pretrained(sys.argv[1])
PY
  model=$out/tiny
fi
m=(--model "$model")
likra train "${m[@]}" --n 8 --save-at 8 --dtype float32 --out "$out/run" > "$out/train.log" 2>&1
likra train "${m[@]}" --n 16 --save-at 8 --dtype float32 --out "$out/run" --resume >> "$out/train.log" 2>&1
likra eval "${m[@]}" --checkpoint "$out/run/step-16" --sample 60 --dtype float32 --items-out "$out/items.jsonl" \
  > "$out/eval.log" 2>&1
likra curve "${m[@]}" --max-n 16 --seeds 1 --sample 40 --dtype float32 --out "$out/curve" > "$out/curve.log" 2>&1
printf '%s\n' '{"id": "q1", "question": "What is the boiling point of water at sea level?", "candidates": ["100 C", "50 C", "0 C"]}' \
  '{"id": "q2", "question": "Which planet is closest to the Sun?", "answer": "Mercury"}' > "$out/rows.jsonl"
likra score --checkpoint "$out/run/step-16" --input "$out/rows.jsonl" --out "$out/score.jsonl" --dtype float32 \
  > "$out/score.log" 2>&1
port=$((20000 + RANDOM % 20000))
likra serve --checkpoint "$out/run/step-16" --port "$port" --dtype float32 > "$out/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
python - "$port" "$out/serve.json" <<'PY'
import json, sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(300):
    try:
        urllib.request.urlopen(url + "/health", timeout=2)
        break
    except OSError:
        time.sleep(0.5)
body = json.dumps({"text_1": "Which planet is closest to the Sun?", "text_2": ["Mercury", "Mars", "Jupiter"]}).encode()
request = urllib.request.Request(url + "/score", body, {"Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(request, timeout=120))
answer.pop("id"), answer.pop("created")
open(sys.argv[2], "w").write(json.dumps(answer, indent=1, sort_keys=True) + "\n")
PY
kill $server
likra lm-eval --model likra --model_args "checkpoint=$out/run/step-16,dtype=float32" --tasks arc_challenge_local \
  --limit 20 --output_path "$out/lm-eval" > "$out/lm-eval.log" 2>&1
python - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
found = json.loads(next(out.glob("lm-eval/**/results_*.json")).read_text())
(out / "lm-eval.json").write_text(json.dumps(found["results"], indent=1, sort_keys=True) + "\n")
PY
cd "$out"
sha256sum run/step-*/*/adapter_model.safetensors run/step-16/optimizer.pt run/step-16/likra.json items.jsonl curve/curve.csv \
  curve/scores/*/base.items.jsonl curve/scores/*/seed-1/*.items.jsonl score.jsonl serve.json lm-eval.json | sort -k2
