"""DPO and KTO baselines (TRL) on Likra's data, on the tiny model: same questions and counts, resumable, learning
in the right direction, loadable and scored as a head, drawn by ``curve``, exported for other tools."""

from __future__ import annotations

import json

import pytest
import torch

from likra.baselines import BaselineConfig, preference_rows, train_baseline
from likra.checkpoints import Checkpoint, list_checkpoints
from likra.errors import LikraError
from likra.experiments.curve import CurveConfig, run_curve
from likra.models import LoadedModel
from likra.scoring import Scorer
from likra.training import TrainConfig, build_training_set

from .conftest import tiny_llama
from .test_cli import assert_one_line_error, likra, likra_here
from .test_training_log import assert_same, expected, tensorboard_scalars


@pytest.fixture
def tiny(tokenizer, tiny_model_dir):
    def make() -> LoadedModel:
        return LoadedModel(tiny_llama(len(tokenizer)), tokenizer, "tiny", str(tiny_model_dir), "cpu", "float32")

    return make


def config(data_dir, **kw) -> BaselineConfig:
    return BaselineConfig(**{"n": 16, "data_dir": str(data_dir), "seed": 3, "lr": 1e-2, **kw})


def test_rows_are_likras_training_pairs(data_dir):
    data = build_training_set(config(data_dir))
    dpo = preference_rows(data, "dpo")
    kto = preference_rows(data, "kto")
    alone = preference_rows(data, "kto", "negatives")
    assert [r[0]["id"] for r in dpo] == [q.id for q in data.questions]  # the same questions in the same order
    for question, pair, negative, d, k, a in zip(
        data.questions, data.positive, data.negative, dpo, kto, alone, strict=True
    ):
        assert d == [{"id": question.id, "prompt": pair[0], "chosen": pair[1], "rejected": negative[0][1]}]
        assert [(r["completion"], r["label"]) for r in k] == [(pair[1], True), (negative[0][1], False)]
        assert a == [k[1]]
        assert pair[1] == " " + question.choices[question.label] and negative[0][1] != pair[1]


@pytest.mark.parametrize(("method", "kto_data"), [("dpo", "both"), ("kto", "both"), ("kto", "negatives")])
def test_checkpoints_at_likras_counts_and_the_policy_learns(tmp_path, data_dir, tiny, method, kto_data):
    loaded = tiny()
    cfg = config(data_dir, method=method, kto_data=kto_data)
    result = train_baseline(loaded, cfg, tmp_path / "run")
    assert [k for k, _ in list_checkpoints(tmp_path / "run")] == [8, 16]
    manifest = json.loads((result.checkpoints[-1] / "likra.json").read_text())
    assert manifest["method"] == method and manifest["heads"] == ["positive"] and manifest["examples_seen"] == 16
    assert manifest["config"]["kto_data"] == kto_data
    data = build_training_set(cfg)
    assert manifest["data"]["question_ids"] == [q.id for q in data.questions]  # what likra train records
    assert all(p.grad is None for p in loaded.model.parameters())  # the plain base model is given back
    # the policy (a plain peft adapter) moved the training answers the way its objective asks
    model = Checkpoint.open(result.checkpoints[-1], loaded=loaded).model
    try:
        scorer = Scorer(model, loaded.tokenizer, heads=("base", "positive"))
        pairs = data.positive + [n[0] for n in data.negative]
        by_head = scorer.loglikelihoods_by_head(pairs)
    finally:
        model.unload()
    reward = [p.logprob - b.logprob for p, b in zip(by_head["positive"], by_head["base"], strict=True)]
    chosen, rejected = reward[:16], reward[16:]
    assert sum(rejected) / 16 < 0  # wrong answers pushed down against the reference
    if kto_data == "both":
        assert sum(c - r for c, r in zip(chosen, rejected, strict=True)) / 16 > 0


def test_resume_continues_the_same_run(tmp_path, data_dir, tiny):
    cfg = config(data_dir, method="dpo", report_to=["tensorboard"])
    train_baseline(tiny(), cfg, tmp_path / "whole")

    def stop(n: int) -> None:
        raise KeyboardInterrupt  # killed right after the first checkpoint

    with pytest.raises(KeyboardInterrupt):
        train_baseline(tiny(), cfg, tmp_path / "cut", progress=stop)
    assert [k for k, _ in list_checkpoints(tmp_path / "cut")] == [8]
    advanced: list[int] = []
    resumed = train_baseline(tiny(), cfg, tmp_path / "cut", resume=True, progress=advanced.append)
    assert resumed.resumed_from == 8 and [c.name for c in resumed.checkpoints] == ["step-16"]
    assert advanced == [8, 8]  # a progress bar over the run starts at the checkpoint and ends full
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "whole" / "step-16" / "positive" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "step-16" / "positive" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    logs = [(tmp_path / run / "train_log.jsonl").read_text().splitlines() for run in ("whole", "cut")]
    whole, cut = ([(row["step"], row["examples"]) for row in map(json.loads, lines)] for lines in logs)
    assert cut == whole == [(1, 8), (2, 16)]  # the resumed trainer's steps continue the count
    read = tensorboard_scalars(tmp_path / "cut" / "runs")  # --report-to: the same numbers, TRL's rewards among them
    assert_same(read, expected(tmp_path / "cut"))
    assert {"train/loss/positive", "train/rewards/chosen", "train/rewards/margins"} <= set(read)
    assert json.loads((tmp_path / "cut" / "step-16" / "likra.json").read_text())["steps"] == 2
    with pytest.raises(LikraError, match="already holds checkpoints"):
        train_baseline(tiny(), cfg, tmp_path / "cut")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"save_at": [4]}, "--save-at 4: TRL saves between whole batches"),
        ({"negatives_per_question": 2}, "one negative per question"),
        ({"method": "ipo"}, "method ipo"),
        ({"kto_data": "positives"}, "--kto-data positives"),
        ({"beta": 0.0}, "--beta 0.0"),
    ],
)
def test_bad_options(data_dir, change, message):
    with pytest.raises(LikraError, match=message):
        config(data_dir, **change)


def test_curve_draws_dpo_and_kto_beside_likra(tmp_path, data_dir, tiny):
    loaded = tiny()
    methods = ["likra", "dpo", "dpo_reward", "kto"]
    curve = CurveConfig(train=TrainConfig(n=16, data_dir=str(data_dir)), seeds=[1], limit=6, methods=methods)
    rows = run_curve(loaded, loaded, curve, tmp_path)["rows"]
    assert {r["method"] for r in rows} >= {"likra", "dpo", "dpo_reward", "kto", "kto_reward"}
    for method in ("dpo", "kto"):
        assert [r["examples"] for r in rows if r["method"] == method] == [0, 8, 16]
        assert (tmp_path / "runs" / f"{method}-seed-1" / "step-16" / "likra.json").is_file()
    paired = [r for r in rows if r["method"].startswith(("dpo", "kto")) and r["examples"] > 0]
    assert len(paired) == 8 and all(0 <= r["p_vs_likra"] <= 1 for r in paired)
    assert all(
        r["p_vs_likra"] is None for r in rows if r["examples"] == 0 or not r["method"].startswith(("dpo", "kto"))
    )
    base = next(r["accuracy"] for r in rows if r["method"] == "base")
    assert all(r["accuracy"] == base for r in rows if r["examples"] == 0 and "calibrated" not in r["method"])
    with pytest.raises(LikraError, match="--methods ipo"):
        run_curve(loaded, loaded, CurveConfig(train=curve.train, methods=["ipo"]), tmp_path)


def test_baseline_and_export_commands(tmp_path, tiny_model_dir, data_dir):
    run = tmp_path / "run"
    result = likra("baseline", "dpo", "--model", str(tiny_model_dir), "--n", "8", "--out", str(run), data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "DPO (TRL)" in result.stdout and "{'loss'" not in result.stdout + result.stderr
    scored = likra("eval", "--model", str(tiny_model_dir), "--checkpoint", str(run), "--limit", "4", data_dir=data_dir)
    assert scored.returncode == 0 and "posbase" in scored.stdout
    out = tmp_path / "kto.jsonl"
    result = likra("export", "--format", "kto", "--n", "3", "--out", str(out), data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in rows] == [True, False] * 3 and set(rows[0]) == {"id", "prompt", "completion", "label"}
    refused = likra("export", "--format", "orpo", "--out", str(out), data_dir=data_dir)
    assert_one_line_error(refused, "--format orpo: expected dpo or kto")
    refused = likra_here("baseline", "dpo", "--n", "8", "--save-at", "4", "--out", str(run), data_dir=data_dir)
    assert_one_line_error(refused, "--save-at 4")
