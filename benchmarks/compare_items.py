"""How often two runs' items.jsonl pick the same answer, per metric (e.g. bfloat16 against float32).

python benchmarks/compare_items.py out/f32.jsonl out/bf16.jsonl
"""

from __future__ import annotations

import json
import sys

from likra.metrics import SCORES, ItemScores, argmax, correct, metric_names


def read(path: str) -> list[ItemScores]:
    with open(path) as handle:
        return [ItemScores.from_json(json.loads(line)) for line in handle if line.strip()]


def main() -> None:
    first, second = (read(p) for p in sys.argv[1:3])
    if [s.id for s in first] != [s.id for s in second]:
        raise SystemExit("the two files hold different questions")
    pairs = list(zip(first, second, strict=True))
    diff = max(abs(u - v) for x, y in pairs for u, v in zip(x.loglikelihoods, y.loglikelihoods, strict=True))
    print(f"{len(first)} questions; largest |Δ log-likelihood| per choice {diff:.3g}")
    for name in metric_names(calibrated=bool(first[0].unconditional)):
        score = SCORES[name]
        same = sum(argmax(score(x)) == argmax(score(y)) for x, y in pairs)
        a, b = sum(correct(first, name)), sum(correct(second, name))
        print(f"{name:15s} same answer {same}/{len(first)}   correct {a} vs {b}")


if __name__ == "__main__":
    main()
