"""likra.nat.curve: NAT's accuracy against negatives, NAT against plain mixing."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from likra.errors import LikraError
from likra.metrics import mcnemar_exact
from likra.nat.curve import NATCurveConfig, Point, curve_rows, run_nat_curve
from likra.nat.runs import AgentEvalConfig
from likra.nat.training import NATConfig, select_trajectories
from likra.nat.trajectories import write_trajectories

from ..test_cli import assert_one_line_error, likra, likra_here
from .helpers import trajectory


@pytest.fixture
def curve_config(tiny_model_dir, data_dir, release_sample) -> NATCurveConfig:
    pos, neg = release_sample
    train = NATConfig(model=str(tiny_model_dir), pos=[str(pos)], neg=[str(neg)], pos_num=2, data_dir=str(data_dir),
                      max_length=256, batch_size=2)  # fmt: skip
    return NATCurveConfig(train=train, eval=AgentEvalConfig(limit=2, max_steps=1, max_new_tokens=4),
                          neg_nums=[0, 2, "all"])  # fmt: skip


def test_curve_trains_each_run_once_shares_the_positives_only_run_and_resumes(tmp_path, curve_config):
    said: list[str] = []
    summary = run_nat_curve(curve_config, tmp_path / "curve", log=said.append)
    runs = sorted(p.name for p in (tmp_path / "curve" / "runs").iterdir())
    assert runs == ["negative-aware-neg-2-seed-1234", "negative-aware-neg-6-seed-1234", "none-neg-2-seed-1234",
                    "none-neg-6-seed-1234", "pos-only-seed-1234"]  # fmt: skip
    assert sum("training" in line for line in said) == 5 and sum("evaluating" in line for line in said) == 5
    rows = summary["rows"]
    assert [(r["template"], r["neg_num"]) for r in rows] == [
        ("negative-aware", 0), ("negative-aware", 2), ("negative-aware", 6), ("none", 0), ("none", 2), ("none", 6)
    ]  # fmt: skip
    assert {r["run"] for r in rows if r["neg_num"] == 0} == {"pos-only-seed-1234"}  # one run for both templates
    assert summary["negatives_available"] == 6 and all(r["n"] == 2 for r in rows)
    nat = [r for r in rows if r["template"] == "negative-aware" and r["neg_num"]]
    assert all(r["p_vs_pos_only"] is not None and r["p_vs_none"] is not None for r in nat)
    manifest = json.loads((tmp_path / "curve/runs/pos-only-seed-1234/step-2/likra.json").read_text())
    assert manifest["template"] == "none" and manifest["data"]["negatives"] == 0
    assert (tmp_path / "curve" / "curve.png").stat().st_size > 10_000
    assert (tmp_path / "curve" / "curve.csv").read_text().startswith("template,neg_num,seed,accuracy")

    said.clear()
    again = run_nat_curve(curve_config, tmp_path / "curve", log=said.append)
    assert said == [] and again["rows"] == rows  # nothing redone
    # an evaluation cut short resumes from its finished chunks; its run is not trained again
    (tmp_path / "curve/runs/none-neg-2-seed-1234/eval/results.json").unlink()
    run_nat_curve(curve_config, tmp_path / "curve", log=said.append)
    assert said == ["none-neg-2-seed-1234: evaluating in " + str(tmp_path / "curve/runs/none-neg-2-seed-1234/eval")]
    # other evaluation options are refused rather than mixed into the curve
    other = replace(curve_config, eval=replace(curve_config.eval, max_steps=2))
    with pytest.raises(LikraError, match="holds an evaluation with other options \\(max_steps\\)"):
        run_nat_curve(other, tmp_path / "curve", log=said.append)


def test_a_larger_negative_count_extends_a_smaller_ones_set(curve_config):
    def negatives(count: int) -> list[str]:
        data = select_trajectories(curve_config.run_config(1234, count, "negative-aware"))
        return sorted(t.question for t in data.trajectories if not t.reward)

    two, four, six = negatives(2), negatives(4), negatives(6)
    assert set(two) < set(four) < set(six) and len(six) == 6
    positives = {
        tuple(sorted(t.question for t in select_trajectories(curve_config.run_config(1234, n, "none")).trajectories
                     if t.reward))
        for n in (0, 2, 6)
    }  # fmt: skip
    assert len(positives) == 1  # the same positives in every run


def test_rows_from_hand_made_evaluations(tmp_path):
    from likra.nat.curve import plot_nat_curve
    from likra.report import write_report

    def evaluation(run: str, rewards: list[bool]) -> None:
        found = [replace(trajectory(r), id=f"q{i}", meta={"steps": 2, "stop": "finish"}) for i, r in enumerate(rewards)]
        write_trajectories(tmp_path / "runs" / run / "eval" / "items.jsonl", found)

    base = [True] * 4 + [False] * 16
    nat = [True] * 14 + [False] * 6
    mix = [True] * 6 + [False] * 14
    evaluation("pos-only-seed-1", base)
    evaluation("negative-aware-neg-8-seed-1", nat)
    evaluation("none-neg-8-seed-1", mix)
    points = [Point(t, n, 1) for t in ("negative-aware", "none") for n in (0, 8)]
    rows = curve_rows(tmp_path, points)
    by = {(r["template"], r["neg_num"]): r for r in rows}
    assert by["negative-aware", 8]["accuracy"] == 0.7 and by["none", 0]["accuracy"] == 0.2
    assert by["negative-aware", 8]["p_vs_pos_only"] == pytest.approx(mcnemar_exact(nat, base))
    assert by["negative-aware", 8]["p_vs_none"] == pytest.approx(mcnemar_exact(nat, mix))
    assert by["none", 8]["p_vs_none"] is None and by["none", 0]["p_vs_pos_only"] is None
    low, high = by["negative-aware", 8]["ci95_low"], by["negative-aware", 8]["ci95_high"]
    assert low < 0.7 < high and high - low == pytest.approx(0.38, abs=0.02)  # Wilson, n = 20
    assert by["none", 8]["majority_baseline"] == 1.0  # every gold answer is "yes" here
    assert plot_nat_curve(rows, tmp_path / "curve.png", "hand-made").stat().st_size > 10_000
    (tmp_path / "curve.json").write_text(json.dumps({"experiment": "nat_curve", "rows": rows}))
    _, markdown = write_report(tmp_path)
    text = markdown.read_text()
    assert "## nat_curve" in text and "## curve" not in text and "| negative-aware | 0.2000 | 0.7000 |" in text


def test_nat_curve_cli_refuses_bad_options(tmp_path, data_dir, release_sample):
    pos, neg = release_sample
    common = ("nat", "curve", "--out", str(tmp_path / "c"), "--pos", str(pos))
    assert_one_line_error(likra(*common, "--neg", str(neg), "--neg-nums", "0,some", data_dir=data_dir),
                          "--neg-nums 0,some")  # fmt: skip
    assert_one_line_error(likra_here(*common, "--neg-nums", "0,8", data_dir=data_dir), "--neg-nums 0,8", "--neg FILE")
    assert_one_line_error(likra_here(*common, "--neg", str(neg), "--templates", "nat", data_dir=data_dir),
                          "--templates nat")  # fmt: skip
    assert_one_line_error(likra_here(*common, "--neg", str(neg), "--neg-nums", "0,50", data_dir=data_dir),
                          "--neg-nums 50", "only 6 negative")  # fmt: skip
    nothing = likra_here(*common, "--neg", str(neg), "--pos-num", "0", "--neg-nums", "0", data_dir=data_dir)
    assert_one_line_error(nothing, "--pos-num 0 --neg-nums 0", "would train on nothing")
    assert_one_line_error(likra_here("nat", "train", "--pos", str(pos), "--pos-num", "0", "--out", str(tmp_path / "c"),
                                data_dir=data_dir), "--pos-num 0", "nothing to train on")  # fmt: skip
    assert not (tmp_path / "c").exists()
