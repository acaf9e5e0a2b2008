"""Base-Likra diagnosed (issue 17): negatives alone (Lbase - L-) at four learning rates and under every length
normalisation, from stored scores (no model pass), with the exact McNemar p against the base model.

    .venv/bin/python results/arc/negbase.py        # from the repository root; writes results/arc/negbase.json

Scores: the 3-seed ARC curve's (learning rate 1e-3, `results/arc/scores/`) and the Base-Likra-only curves at 1e-4,
3e-4 and 3e-3 (`results/arc/negative-lr*/`, seed 1); SmolLM2-135M-Instruct, heads trained in float32, scored in
bfloat16 on a 2-core AMX CPU, ARC-Challenge test (1172 questions). The last rows are Gemma-3-270M's curve
(`results/gemma3-270m/scores/`, seed 1, against its own base model), where its checkpoints have been scored."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

from likra.metrics import ItemScores, combine, correct, mcnemar_exact

ROOT = Path(__file__).resolve().parent
METRICS = {"acc": "none", "acc_norm": "per character", "acc_per_byte": "per byte", "acc_per_token": "per token",
           "acc_calibrated": "calibrated"}  # fmt: skip
STEPS = (256, 512, 1024)


def items(path: Path) -> list[ItemScores]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [ItemScores.from_json(json.loads(line)) for line in handle]


SMOLLM2 = ROOT / "scores" / "arc_challenge-test"
GEMMA = ROOT.parent / "gemma3-270m" / "scores" / "arc_challenge-test"
BASES = {SMOLLM2: "base model", GEMMA: "gemma3-270m base model"}  # each curve's base model, as its rows name it


def runs() -> dict[tuple[str, int], tuple[Path, Path]]:
    """(learning rate, seed) → the folder of its step-K items and the folder of its base model's items."""
    found = {("1e-3", s): (SMOLLM2 / f"seed-{s}", SMOLLM2) for s in (1, 2, 3)}
    for lr in ("1e-4", "3e-4", "3e-3"):  # Base-Likra-only runs, scored against the 3-seed curve's base model
        found[(lr, 1)] = (ROOT / f"negative-lr{lr}" / "scores" / "arc_challenge-test" / "seed-1", SMOLLM2)
    found[("gemma3-270m 1e-3", 1)] = (GEMMA / "seed-1", GEMMA)
    return found


def main() -> None:
    rows: list[dict] = []
    bases: dict[Path, tuple[list[str], dict[str, list[bool]]]] = {}  # base folder → its ids and hits
    for (lr, seed), (folder, base_folder) in runs().items():
        if base_folder not in bases:
            base = items(base_folder / "base.items.jsonl.gz")
            bases[base_folder] = [b.id for b in base], {m: correct(base, m) for m in METRICS}
            rates = {m: sum(h) / len(h) for m, h in bases[base_folder][1].items()}
            rows.append({"lr": BASES[base_folder], "seed": None, "step": 0, **rates, "p": None})
        base_ids, base_hits = bases[base_folder]
        for step in STEPS:
            path = folder / f"step-{step}.items.jsonl.gz"
            if not path.is_file():  # a curve not scored this far yet
                continue
            scores = [combine(s, "negbase") for s in items(path)]
            assert [s.id for s in scores] == base_ids, path
            hits = {m: correct(scores, m) for m in METRICS}
            row = {"lr": lr, "seed": seed, "step": step, **{m: sum(h) / len(h) for m, h in hits.items()}}
            rows.append({**row, "p": mcnemar_exact(hits["acc_norm"], base_hits["acc_norm"])})
    (ROOT / "negbase.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| lr | seed | examples | " + " | ".join(METRICS.values()) + " | p vs base (per character) |")
    print("|---" * (4 + len(METRICS)) + "|")
    for r in rows:
        name = r["lr"]
        p = "" if r["p"] is None else f"{r['p']:.3f}"
        cells = " | ".join(f"{r[m]:.3f}" for m in METRICS)
        print(f"| {name} | {r['seed'] or ''} | {r['step']} | {cells} | {p} |")


if __name__ == "__main__":
    sys.exit(main())
