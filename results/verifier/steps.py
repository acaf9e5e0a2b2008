"""Every verifier at every checkpoint of seed 1 (issue 20), from the evaluations results/verifier/steps.sh wrote
(no model pass): AUROC, hard AUROC and accuracy at 50% coverage against examples seen, for the base model, SFT,
calibrated SFT, Likra, Base-Likra, L+ - Lbase, P(True) under the base model and SFT (the Likra run's evaluations),
and DPO's and KTO's policies and implicit rewards (their own runs' evaluations).

    .venv/bin/python results/verifier/steps.py > results/verifier/steps.md   # writes steps.csv and steps.png

SmolLM2-135M-Instruct, heads trained in float32 on seed 1's questions of the ARC pool (ARC-Easy test held out),
scored in float32 on the seeded 300 of ARC-Challenge test: DPO on a 2-core AMD EPYC (no AMX), KTO and the Likra
run's evaluations on a 2-core Intel Xeon with AMX (its run trained again there: step-1024's evaluation matches the
EPYC's to 5e-5 in every verifier metric, docs/verifier.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from likra.experiments.curve import plot_verifier
from likra.files import write_csv

HERE = Path(__file__).resolve().parent / "steps"
# method in the figure: (evaluation file's kind, its verifier row)
METHODS = {
    "base": ("ptrue", "base"),
    "base_ptrue": ("ptrue", "base_ptrue"),
    "sft": ("ptrue", "sft"),
    "sft_calibrated": ("ptrue", "sft_calibrated"),
    "sft_ptrue": ("ptrue", "sft_ptrue"),
    "posbase": ("ptrue", "posbase"),
    "likra": ("ptrue", "likra"),
    "negbase": ("ptrue", "negbase"),
    "dpo": ("dpo", "sft"),  # the policy's likelihood
    "dpo_reward": ("dpo", "posbase"),  # the implicit reward: Lpolicy - Lbase
    "kto": ("kto", "sft"),
    "kto_reward": ("kto", "posbase"),
}
METRICS = ("auroc", "hard_auroc", "acc_at_50", "acc_at_80")


def rows() -> list[dict]:
    out = []
    for method, (kind, row) in METHODS.items():
        for path in sorted(HERE.glob(f"{kind}-step-*.json"), key=lambda p: int(p.stem.split("-")[-1])):
            result = json.loads(path.read_text())
            examples = 0 if method.startswith("base") else result["checkpoint"]["examples_seen"]
            if method.startswith("base") and out and out[-1]["method"] == method:
                continue  # the base model does not move: one row
            accuracy = result["modes"].get(row, {}).get("acc_norm")  # none for P(True) and calibrated rows
            out.append({"task": result["task"], "split": result["split"], "method": method, "examples": examples,
                        "seed": 1, "n": result["n"], "accuracy": accuracy,
                        **{m: result["verifier"][row][m] for m in METRICS}})  # fmt: skip
    return out


def main() -> None:
    table = rows()
    fields = ["task", "split", "method", "examples", "seed", "n", "accuracy", *METRICS]
    write_csv(HERE.parent / "steps.csv", table, fields)
    plot_verifier(table, HERE.parent / "steps.png", "Verifiers at every checkpoint, ARC-Challenge test, seed 1 "
                  "(300 questions, float32)")  # fmt: skip
    steps = sorted({r["examples"] for r in table if r["examples"]})
    print("| method | metric | " + " | ".join(str(s) for s in steps) + " |")
    print("|---|---|" + "---|" * len(steps))
    for method in METHODS:
        mine = {r["examples"]: r for r in table if r["method"] == method}
        for metric in ("auroc", "hard_auroc", "acc_at_50"):
            cells = [mine.get(0 if method.startswith("base") else s, {}).get(metric) for s in steps]
            print(f"| {method} | {metric} | " + " | ".join("" if c is None else f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
