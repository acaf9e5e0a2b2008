"""Experiments on the tiny model: learning curves are complete, consistent and resumable."""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest

from likra.experiments.curve import METHODS, CurveConfig, curve_rows, plot_curve, run_curve
from likra.models import LoadedModel
from likra.plots import mean_band
from likra.training import TrainConfig, train

from .conftest import tiny_llama


@pytest.fixture
def tiny(tokenizer, tiny_model_dir):
    return LoadedModel(tiny_llama(len(tokenizer)), tokenizer, "tiny", str(tiny_model_dir), "cpu", "float32")


def test_curve_rows_files_and_resume(tmp_path, data_dir, tiny):
    config = CurveConfig(train=TrainConfig(n=16, data_dir=str(data_dir)), seeds=[1, 2], limit=6)
    logs: list[str] = []
    summary = run_curve(tiny, tiny, config, tmp_path, log=logs.append)
    rows = summary["rows"]
    assert len(rows) == 2 * 3 * len(METHODS)  # seeds x (0, 8, 16) x methods
    with (tmp_path / "curve.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(rows)
    at_zero = {r["method"]: r["accuracy"] for r in rows if r["examples"] == 0 and r["seed"] == 1}
    assert at_zero["sft"] == at_zero["likra"] == at_zero["negbase"] == at_zero["base"]
    assert at_zero["sft_calibrated"] == at_zero["base_calibrated"]
    likra_rows = [r for r in rows if r["method"] == "likra" and r["examples"] > 0]
    assert all(0 <= r["p_vs_sft"] <= 1 and 0 <= r["p_vs_sft_calibrated"] <= 1 for r in likra_rows)
    base_rows = {(r["seed"], r["examples"]): r["accuracy"] for r in rows if r["method"] == "base"}
    assert len(set(base_rows.values())) == 1  # the base model does not move with checkpoints
    assert (tmp_path / "runs" / "seed-2" / "step-16" / "likra.json").is_file()
    items = sorted((tmp_path / "scores").rglob("*.items.jsonl"))
    assert len(items) == 1 + 2 * 2  # base once, then two checkpoints per seed
    stamps = [p.stat().st_mtime_ns for p in items]
    logs.clear()
    assert run_curve(tiny, tiny, config, tmp_path, log=logs.append)["rows"] == rows
    assert logs == [] and [p.stat().st_mtime_ns for p in items] == stamps  # nothing redone
    png = plot_curve(rows, tmp_path / "curve.png", "tiny")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_a_curve_extended_to_a_larger_max_n_continues_its_runs_and_scores_only_the_new_checkpoints(
    tmp_path, data_dir, tiny
):
    small = CurveConfig(train=TrainConfig(n=16, data_dir=str(data_dir)), seeds=[1], limit=4)
    run_curve(tiny, tiny, small, tmp_path / "grown", log=lambda _: None)
    scored = sorted((tmp_path / "grown" / "scores").rglob("*.items.jsonl"))
    stamps = [p.stat().st_mtime_ns for p in scored]
    logs: list[str] = []
    large = replace(small, train=replace(small.train, n=32))
    rows = run_curve(tiny, tiny, large, tmp_path / "grown", log=logs.append)["rows"]
    assert logs == [f"seed-1: training (resuming) to 32 examples in {tmp_path / 'grown' / 'runs' / 'seed-1'}",
                    "seed-1: scoring step-32"]  # fmt: skip
    assert [p.stat().st_mtime_ns for p in scored] == stamps  # the old checkpoints' scores are kept
    assert {r["examples"] for r in rows} == {0, 8, 16, 32}
    run_curve(tiny, tiny, large, tmp_path / "once", log=lambda _: None)
    for step in ("step-16", "step-32"):
        for head in ("positive", "negative"):
            grown, once = (tmp_path / f / "runs" / "seed-1" / step / head / "adapter_model.safetensors"
                           for f in ("grown", "once"))  # fmt: skip
            assert grown.read_bytes() == once.read_bytes()


def test_a_base_likra_curve_trains_and_scores_the_negative_head_alone(tmp_path, data_dir, tiny):
    config = CurveConfig(train=TrainConfig(n=16, data_dir=str(data_dir)), seeds=[1], limit=4, methods=["negbase"])
    rows = run_curve(tiny, tiny, config, tmp_path, log=lambda _: None)["rows"]
    step = tmp_path / "runs" / "seed-1" / "step-16"
    assert (step / "negative").is_dir() and not (step / "positive").exists()
    assert {r["method"] for r in rows if r["examples"] > 0} == {"base", "base_calibrated", "negbase"}
    both = CurveConfig(train=TrainConfig(n=16, data_dir=str(data_dir)), seeds=[1], limit=4)
    run_curve(tiny, tiny, both, tmp_path / "both", log=lambda _: None)
    negbase = [r for r in curve_rows(tmp_path / "both") if r["method"] == "negbase"]
    assert [r["accuracy"] for r in rows if r["method"] == "negbase"] == [r["accuracy"] for r in negbase]


def test_prefix_likra_beside_two_head_likra_in_one_curve(tmp_path, data_dir, tiny):
    from likra.checkpoints import Checkpoint
    from likra.data.prompts import with_prefix
    from likra.evaluation import evaluate, prepare, read_items
    from likra.scoring import Scorer

    config = CurveConfig(train=TrainConfig(n=16, data_dir=str(data_dir)), seeds=[1], limit=4,
                         methods=["likra", "prefix", "prefix_sft"])  # fmt: skip
    rows = run_curve(tiny, tiny, config, tmp_path, log=lambda _: None)["rows"]
    prefix = [r for r in rows if r["method"] == "prefix" and r["examples"] > 0]
    assert [r["examples"] for r in prefix] == [8, 16] and all(0 <= r["p_vs_likra"] <= 1 for r in prefix)
    assert {r["method"] for r in rows} >= {"likra", "prefix", "prefix_sft", "sft"}
    # the stored "heads" are the one adapter scored after each line
    run = tmp_path / "runs" / "prefix-seed-1" / "step-16"
    stored = read_items(tmp_path / "scores" / "arc_challenge-test" / "prefix-seed-1" / "step-16.items.jsonl")
    requests = prepare(config.eval_config())
    prefixed = with_prefix(requests, "negative")
    pairs = [(c, x) for r in prefixed for c, x in zip(r.contexts, r.continuations, strict=True)]
    model = Checkpoint.open(run, loaded=tiny).model
    try:
        by_hand = Scorer(model, tiny.tokenizer, heads=("prefix",)).loglikelihoods_by_head(pairs)["prefix"]
    finally:
        model.unload()
    assert [v for s in stored for v in s.heads["negative"]] == pytest.approx([v.logprob for v in by_hand], abs=1e-5)
    alone = evaluate(tiny, replace(config.eval_config(str(run))))  # standalone: the base model scored too
    assert alone.results["mode"] == "likra"
    for own, kept in zip(alone.items, stored, strict=True):
        assert own.heads["positive"] == pytest.approx(kept.heads["positive"], abs=1e-5)
        assert own.loglikelihoods == pytest.approx(kept.loglikelihoods, abs=1e-5)


def test_curve_on_a_second_evaluation_set_needs_it_held_out(tmp_path, data_dir, tiny):
    from likra.checkpoints import read_manifest
    from likra.data import build_requests, get_task, load_items
    from likra.errors import LikraError
    from likra.evaluation import trained_on

    paper_pool = TrainConfig(n=16, data_dir=str(data_dir))
    easy = CurveConfig(train=paper_pool, seeds=[1], eval_task="arc_easy", limit=5)
    with pytest.raises(LikraError, match="--eval-task arc_easy: 5 of its 5 questions are in the arc_challenge "
                       "training pool; add --hold-out arc_easy:test"):  # fmt: skip
        run_curve(tiny, tiny, easy, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()  # refused before any work

    held = replace(paper_pool, hold_out=["arc_easy:test"])
    run_curve(tiny, tiny, CurveConfig(train=held, seeds=[1], limit=5), tmp_path, log=lambda _: None)
    summary = run_curve(tiny, tiny, replace(easy, train=held), tmp_path, log=lambda _: None)
    assert [(s["task"], s["split"], s["n"]) for s in summary["eval_sets"]] == [
        ("arc_challenge", "test", 5),
        ("arc_easy", "test", 5),
    ]
    rows = summary["rows"]
    assert {(r["task"], r["examples"]) for r in rows if r["method"] == "likra"} == {
        (t, k) for t in ("arc_challenge", "arc_easy") for k in (0, 8, 16)
    }
    assert len(list((tmp_path / "runs").iterdir())) == 1  # both sets scored the same run
    png = plot_curve(rows, tmp_path / "two.png", "two sets")
    from PIL import Image

    assert Image.open(png).size[0] == 2 * Image.open(plot_curve(rows[:1], tmp_path / "one.png", "one")).size[0]

    # a checkpoint trained on the paper pool has seen ARC-Easy test questions: evaluation counts them
    run = tmp_path / "paper-run"
    train(tiny, replace(paper_pool, n=64), run)
    _, manifest = read_manifest(run / "step-64")
    easy_ids = {item.id: item for item in load_items("arc_easy", "test", data_dir)}
    seen = [easy_ids[i] for i in manifest.data["question_ids"] if i in easy_ids]
    assert seen  # 64 draws from a pool that is one third ARC-Easy test
    requests = build_requests(get_task("arc_easy"), [*seen, *list(easy_ids.values())[:3]])
    expected = len(seen) + sum(item.id in {s.id for s in seen} for item in list(easy_ids.values())[:3])
    assert trained_on(manifest, requests) == expected
    _, early = read_manifest(run / "step-8")
    assert trained_on(early, requests) == len([i for i in early.data["question_ids"][:8] if i in easy_ids])


def test_mean_band_is_a_t_interval():
    mean, half = mean_band([0.30, 0.32, 0.34])
    assert mean == pytest.approx(0.32) and half == pytest.approx(4.303 * 0.02 / 3**0.5)
    assert mean_band([0.5]) == (0.5, 0.0)


def test_sweep_weights_and_rows():
    from likra.errors import LikraError
    from likra.experiments.sweep import parse_weights, sweep_rows
    from likra.metrics import ItemScores

    assert parse_weights("0:1.5:0.5") == [0.0, 0.5, 1.0, 1.5]
    assert parse_weights("0.5,1,2") == [0.5, 1.0, 2.0]
    for bad in ("1:0:0.1", "0:1:0", "a,b"):
        with pytest.raises(LikraError, match=f"--weights {bad}"):
            parse_weights(bad)
    item = ItemScores(
        "q", 0, [-4.0, -3.0], [], [1, 1], [2, 2], [2, 2], heads={"positive": [-2.0, -1.5], "negative": [-5.0, -1.0]}
    )
    rows = {(r["mode"], r["neg_weight"]): r for r in sweep_rows([item], [0.0, 1.0])}
    assert rows[("likra", 0.0)]["acc"] == 0.0  # w = 0 is SFT, which prefers the wrong choice 1
    assert rows[("likra", 1.0)]["acc"] == 1.0  # the negative head turns it around
    assert rows[("negbase", 1.0)]["acc"] == 1.0 and rows[("likra", 1.0)]["acc_calibrated"] is None


def test_sweep_command_from_stored_items(tmp_path):
    from .test_cli import assert_one_line_error, likra

    row = (
        '{"id": "q", "label": 0, "loglikelihoods": [-4, -3], "unconditional": [-1, -1], "n_tokens": [1, 1], '
        '"n_chars": [2, 2], "n_bytes": [2, 2], "heads": {"positive": [-2, -1.5], "negative": [-5, -1]}, '
        '"heads_unconditional": {"positive": [-1, -1], "negative": [-1, -1]}}\n'
    )
    items = tmp_path / "items.jsonl"
    items.write_text(row)
    result = likra("sweep", "--items", str(items), "--out", str(tmp_path / "sw"), "--weights", "0,1")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sw" / "sweep.png").is_file()
    assert len((tmp_path / "sw" / "sweep.csv").read_text().splitlines()) == 1 + 2 * 2
    assert_one_line_error(likra("sweep", "--out", str(tmp_path / "x")), "--checkpoint", "--items")


def test_ablation_shares_the_positive_head_and_trains_one_negative_head_per_kind(tmp_path, data_dir, tiny):
    from likra.experiments.ablate import run_ablation

    config = CurveConfig(train=TrainConfig(n=16, data_dir=str(data_dir)), seeds=[1], limit=6)
    summary = run_ablation(tiny, tiny, config, ["incorrect", "irrelevant"], tmp_path, log=lambda _: None)
    rows = summary["rows"]
    curve = {r["examples"]: r["accuracy"] for r in run_curve(tiny, tiny, config, tmp_path, log=lambda _: None)["rows"]
             if r["method"] == "likra" and r["examples"] > 0}  # fmt: skip
    own = {r["examples"]: r["accuracy"] for r in rows if r["kind"] == "incorrect" and r["method"] == "likra"}
    assert own == curve  # the curve's own kind is the curve itself
    assert {r["examples"] for r in rows if r["kind"] == "irrelevant"} == {8, 16}
    step = tmp_path / "ablate" / "irrelevant" / "seed-1" / "step-16"
    assert (step / "negative").is_dir() and not (step / "positive").exists()
    assert (tmp_path / "ablate.csv").is_file()


def test_curve_and_ablate_commands(tmp_path, tiny_model_dir, data_dir):
    from .test_cli import assert_one_line_error, likra

    common = ["--model", str(tiny_model_dir), "--max-n", "8", "--seeds", "1", "--limit", "4", "--out", str(tmp_path)]
    result = likra("curve", *common, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "likra" in result.stdout and (tmp_path / "curve.png").is_file()
    result = likra("ablate", *common, "--negatives", "incorrect,unrelated", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "unrelated" in result.stdout and (tmp_path / "ablate.png").is_file()
    assert_one_line_error(likra("curve", *common, "--seeds", "0", data_dir=data_dir), "--seeds 0")
    assert_one_line_error(likra("ablate", *common, "--negatives", "nope", data_dir=data_dir), "--negatives nope")


def test_mass_pairs_each_question_with_four_answer_kinds(tmp_path, data_dir, tiny):
    import json

    from likra.data import load_items
    from likra.experiments.mass import ANSWER_KINDS, run_mass
    from likra.training import train

    train(tiny, TrainConfig(n=16, data_dir=str(data_dir), seed=3), tmp_path / "run")
    logs: list[str] = []
    summary = run_mass(tiny, tmp_path / "run", tmp_path / "mass", limit=5, sample=None, data_dir=str(data_dir),
                       log=logs.append)  # fmt: skip
    rows = summary["rows"]
    assert len(rows) == 2 * 2 * len(ANSWER_KINDS)  # checkpoints 8 and 16 x heads x answer kinds
    test = {q.id: q for q in load_items("arc_challenge", "test", data_dir)[:5]}
    for line in (tmp_path / "mass" / "questions.jsonl").read_text().splitlines():
        row = json.loads(line)
        q = test[row["id"]]
        correct_answer, likely, irrelevant, unrelated = row["choices"]
        assert correct_answer == q.choices[q.label] and likely in q.choices and likely != correct_answer
        assert irrelevant not in q.choices and unrelated not in q.choices
    logs.clear()
    assert run_mass(tiny, tmp_path / "run", tmp_path / "mass", limit=5, sample=None, data_dir=str(data_dir),
                    log=logs.append)["rows"] == rows  # fmt: skip
    assert logs == []
    from PIL import Image

    from likra.experiments.mass import plot_mass

    # both heads: a second panel with the positive head's change minus the negative head's
    two = Image.open(plot_mass(rows, tmp_path / "mass.png", "tiny")).size[0]
    one = Image.open(plot_mass([r for r in rows if r["head"] == "positive"], tmp_path / "pos.png", "tiny")).size[0]
    assert two == 2 * one


def test_demo_command_trains_scores_prints_the_curve_and_writes_the_report(tmp_path, tiny_model_dir, data_dir):
    from .test_cli import likra

    out = tmp_path / "demo"
    result = likra("demo", "--model", str(tiny_model_dir), "--n", "8", "--sample", "4", "--dtype", "float32",
                   "--out", str(out), data_dir=data_dir)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "learning curve" in result.stdout and "sft_calibrated" in result.stdout
    assert "report:" in result.stdout and (out / "report.html").is_file() and (out / "curve.png").is_file()
    assert "likra demo" in (out / "report.html").read_text()
