"""Likra as a verifier on ARC-Challenge test (issue 20), from the committed scores of the 3-seed ARC curve
(`results/arc/scores/`; no model pass): AUROC (every option scored on its own, correct against wrong), hard AUROC
(the correct option against the base model's most likely wrong one) and accuracy at 50% / 80% coverage, for every
method at every checkpoint.

    .venv/bin/python results/verifier/arc.py     # from the repository root; writes results/verifier/arc.csv, arc.png

SmolLM2-135M-Instruct, heads trained in float32 on the ARC pool (ARC-Easy test held out), scored in bfloat16 on a
2-core AMX CPU; 1172 questions, 4-5 options each. Seeds 2 and 3 stop at 1024 examples, seed 1 runs to 4221."""

from __future__ import annotations

import gzip
import shutil
import sys
import tempfile
from pathlib import Path

from likra.evaluation import read_items
from likra.experiments.curve import CSV_FIELDS, P_FIELDS, curve_rows, plot_verifier, seed_folders, stored_steps
from likra.files import write_csv
from likra.metrics import argmax
from likra.plots import mean_band
from likra.verifier_metrics import method_scores, verifier_metrics

ROOT = Path(__file__).resolve().parents[1]
SHOWN = ("base", "base_calibrated", "sft", "sft_calibrated", "posbase", "likra", "negbase", "prefix")
STEPS = (0, 64, 256, 1024, 4221)


def restore(target: Path) -> None:
    """The committed scores, gunzipped, as a curve folder's scores/."""
    source = ROOT / "arc" / "scores"
    for path in source.rglob("*"):
        if path.is_file():
            out = target / "scores" / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".gz":
                with gzip.open(path, "rb") as handle:
                    out.with_suffix("").write_bytes(handle.read())
            else:
                shutil.copy(path, out)


def posbase_rows(scores: Path) -> list[dict]:
    """L+ - Lbase (the positive head with the base model's preference taken out, as Likra's ratio takes out the
    negative head's): the control that tells the negative head's part in Likra from the cancelling alone."""
    rows = []
    for kind, seed, folder in seed_folders(scores):
        for examples, path in stored_steps(folder) if kind == "" else []:
            items = read_items(path)
            values = method_scores(items, "posbase")
            hits = [argmax(v) == s.label for v, s in zip(values, items, strict=True)]
            rows.append({"task": "arc_challenge", "split": "test", "method": "posbase", "examples": examples,
                         "seed": seed, "accuracy": sum(hits) / len(hits), "n": len(items),
                         **dict.fromkeys(P_FIELDS), **verifier_metrics(items, values)})  # fmt: skip
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        restore(Path(tmp))
        rows = [r for r in curve_rows(Path(tmp)) if r["task"] == "arc_challenge"]
        rows += posbase_rows(Path(tmp) / "scores" / "arc_challenge-test")
    here = Path(__file__).resolve().parent
    write_csv(here / "arc.csv", rows, CSV_FIELDS)
    drawn = [r for r in rows if r["method"] in SHOWN]
    plot_verifier(drawn, here / "arc.png", "SmolLM2-135M-Instruct as a verifier, ARC-Challenge test (bfloat16)")
    print("| method | examples | seeds | accuracy | AUROC | hard AUROC | acc@50% | acc@80% |")
    print("|---|---|---|---|---|---|---|---|")
    for method in SHOWN:
        for step in STEPS:
            at = [r for r in rows if r["method"] == method and r["examples"] == step]
            if not at or (step > 0 and method.startswith("base")):  # the base model does not move
                continue
            cells = []
            for key in ("accuracy", "auroc", "hard_auroc", "acc_at_50", "acc_at_80"):
                mean, half = mean_band([r[key] for r in at])
                cells.append(f"{mean:.3f}" + (f" ± {half:.3f}" if len(at) > 1 else ""))
            print(f"| {method} | {step} | {len(at)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
