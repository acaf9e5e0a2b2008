"""The grid of positive x negative examples from stored scores (no model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from likra.errors import LikraError
from likra.evaluation import write_items
from likra.experiments.curve import curve_rows
from likra.experiments.grid import GridConfig, run_grid, value_ratio
from likra.files import write_json
from likra.metrics import ItemScores

# Two questions, two choices each (answer 0), one character per choice: acc_norm compares the numbers as they are.
BASE = [[-1.0, -0.5], [-0.5, -1.0]]  # the base model is wrong on q0, right on q1
# per checkpoint: the positive head's and the negative head's log-likelihoods per question
HEADS = {
    8: {"positive": [[-1.0, -0.9], [-0.5, -1.0]], "negative": [[-1.0, -0.4], [-0.4, -1.0]]},
    16: {"positive": [[-0.5, -0.9], [-0.5, -1.0]], "negative": [[-2.0, -0.1], [-0.6, -1.0]]},
}


def item(i: int, loglikelihoods: list[float], heads: dict[str, list[float]] | None = None) -> ItemScores:
    heads = heads or {}
    return ItemScores(f"q{i}", 0, loglikelihoods, [-2.0, -2.0], [1, 1], [1, 1], [1, 1], heads,
                      {h: [-2.0, -2.0] for h in heads})  # fmt: skip


def curve_folder(tmp_path, seeds=(1, 2)):
    scores = tmp_path / "scores" / "arc_challenge-test"
    write_json(scores / "eval.json", {"task": "arc_challenge", "split": "test", "n": 2, "limit": None, "sample": None})
    write_items(scores / "base.items.jsonl", [item(i, ll) for i, ll in enumerate(BASE)])
    for seed in seeds:
        for step, heads in HEADS.items():
            rows = [item(i, ll, {h: heads[h][i] for h in heads}) for i, ll in enumerate(BASE)]
            write_items(scores / f"seed-{seed}" / f"step-{step}.items.jsonl", rows)
    return tmp_path


def test_grid_cells_join_one_checkpoints_positive_head_with_anothers_negative_head(tmp_path):
    folder = curve_folder(tmp_path)
    summary = run_grid(folder, GridConfig(bootstrap=100))
    assert summary["counts"] == [0, 8, 16]
    cells = {(r["seed"], r["n_pos"], r["n_neg"]): r for r in summary["rows"]}
    assert len(cells) == 2 * 3 * 3
    # by hand: (16 positives, 8 negatives) is L+(16) - L-(8): q0 [-0.5+1, -0.9+0.4] → 0 right; q1 [-0.1, 0] → wrong
    assert cells[1, 16, 8]["acc_norm"] == 0.5 and cells[1, 16, 8]["method"] == "likra"
    # (8, 16): q0 [-1+2, -0.9+0.1] → right; q1 [0.1, 0] → right
    assert cells[1, 8, 16]["acc_norm"] == 1.0
    # the diagonal is the curve's Likra, the n_neg = 0 column its SFT, the n_pos = 0 row its Base-Likra
    curve = {(r["method"], r["seed"], r["examples"]): r["accuracy"] for r in curve_rows(folder)}
    for seed in (1, 2):
        assert cells[seed, 0, 0]["acc_norm"] == curve["base", seed, 0] and cells[seed, 0, 0]["method"] == "base"
        for k in (8, 16):
            assert cells[seed, k, k]["acc_norm"] == curve["likra", seed, k]
            assert cells[seed, k, 0]["acc_norm"] == curve["sft", seed, k] and cells[seed, k, 0]["method"] == "sft"
            assert cells[seed, 0, k]["acc_norm"] == curve["negbase", seed, k]
            assert cells[seed, k, 0]["acc_calibrated"] == curve["sft_calibrated", seed, k]
    assert summary["mean_acc_norm"][2][1] == 0.5  # [n_pos 16][n_neg 8], both seeds alike
    gains = {g["from"]: g for g in summary["gains"]}
    assert list(gains) == [8]  # k = 8 negatives added to SFT(8), against SFT(8) → SFT(16)
    assert gains[8]["negatives"]["mean"] == pytest.approx(cells[1, 8, 8]["acc_norm"] - cells[1, 8, 0]["acc_norm"])
    assert gains[8]["positives"]["mean"] == pytest.approx(cells[1, 16, 0]["acc_norm"] - cells[1, 8, 0]["acc_norm"])
    with (folder / "grid.csv").open() as handle:
        assert handle.readline().strip() == "task,split,seed,n_pos,n_neg,method,acc_norm,acc_calibrated,n"
    assert json.loads((folder / "grid.json").read_text())["counts"] == [0, 8, 16]
    assert (folder / "grid.png").read_bytes()[:4] == b"\x89PNG"


def test_a_curve_extended_to_more_examples_keeps_its_earlier_grid_with_max_examples(tmp_path):
    folder = curve_folder(tmp_path)
    whole = run_grid(folder, GridConfig(bootstrap=100), tmp_path / "before")
    for seed in (1, 2):  # the curve continued to 32 examples
        longer = folder / "scores" / "arc_challenge-test" / f"seed-{seed}"
        (longer / "step-32.items.jsonl").write_bytes((longer / "step-8.items.jsonl").read_bytes())
    assert run_grid(folder, GridConfig(bootstrap=100), tmp_path / "after")["counts"] == [0, 8, 16, 32]
    kept = run_grid(folder, GridConfig(bootstrap=100, max_examples=31), tmp_path / "kept")
    assert kept["counts"] == [0, 8, 16]
    assert kept["rows"] == whole["rows"] and kept["value_of_a_negative"] == whole["value_of_a_negative"]
    with pytest.raises(LikraError, match="--max-examples 0: must be 1 or more"):
        run_grid(folder, GridConfig(max_examples=0))


def test_value_ratio_recovers_a_known_exchange_rate():
    counts = [0, 8, 16, 32]
    n_items = 400
    hits = np.zeros((2, 4, 4, n_items), dtype=bool)
    for i in range(4):  # SFT gains .0025 per positive example; k negatives on k positives .025 per negative
        for j in range(4):
            accuracy = 0.2 + 0.0025 * counts[i] + (0.025 * counts[i] if i == j else 0.0)
            hits[:, i, j, : round(accuracy * n_items)] = True
    below = value_ratio(hits, counts, GridConfig(threshold=16, bootstrap=200), below=True)
    above = value_ratio(hits, counts, GridConfig(threshold=16, bootstrap=200), below=False)
    assert below["steps"] == [[8, 16]] and above["steps"] == [[16, 32]]
    assert below["ratio"] == pytest.approx(10.0) and below["gain_per_negative"] == pytest.approx(0.025)
    assert above["ratio"] == pytest.approx(10.0)
    low, high = below["ratio_ci95"]
    assert low < 10.0 < high
    flat = np.zeros_like(hits)  # nothing changes: no ratio interval to give
    assert value_ratio(flat, counts, GridConfig(bootstrap=100), below=True)["ratio_ci95"] is None


def test_grid_refuses_a_folder_it_cannot_read(tmp_path):
    with pytest.raises(LikraError, match="not a likra curve folder"):
        run_grid(tmp_path)
    folder = curve_folder(tmp_path / "c")
    with pytest.raises(LikraError, match=r"--eval-task hellaswag: not scored in .*arc_challenge:test"):
        run_grid(folder, GridConfig(eval_task="hellaswag"))
    with pytest.raises(LikraError, match="--neg-weight nan"):
        run_grid(folder, GridConfig(neg_weight=float("nan")))


def test_grid_command_and_report(tmp_path):
    from .test_cli import assert_one_line_error, likra

    folder = curve_folder(tmp_path)
    result = likra("grid", str(folder), "--bootstrap", "100")
    assert result.returncode == 0, result.stderr
    assert "mean acc_norm" in result.stdout and (folder / "grid.png").is_file()
    result = likra("report", str(folder))
    assert result.returncode == 0, result.stderr
    report = (folder / "report.md").read_text()
    assert "## grid" in report and "value of one negative example" in report
    assert_one_line_error(likra("grid", str(tmp_path / "nothing")), "not a likra curve folder")
