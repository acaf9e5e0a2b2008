"""The lm-evaluation-harness plugin: lm-eval's own evaluation loop through ``--model likra`` gives ``likra eval``'s
numbers for the same checkpoint and mode."""

from __future__ import annotations

import shutil

import pytest

from likra.errors import LikraError
from likra.evaluation import EvalConfig, evaluate
from likra.models import load_model
from likra.training import TrainConfig, train

from .test_cli import likra

N = 20


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir, data_dir):
    """Heads trained on the tiny model, with a high learning rate so that they differ from the base model."""
    out = tmp_path_factory.mktemp("likra-run")
    train(load_model(str(tiny_model_dir)), TrainConfig(n=16, lr=1e-2, data_dir=str(data_dir), seed=3), out)
    return out


@pytest.fixture(scope="module")
def prefix_run(tmp_path_factory, tiny_model_dir, data_dir):
    """Prefix Likra (one adapter) on the tiny model."""
    out = tmp_path_factory.mktemp("prefix-run")
    config = TrainConfig(n=16, lr=1e-2, data_dir=str(data_dir), seed=3, method="prefix")
    train(load_model(str(tiny_model_dir)), config, out)
    return out


@pytest.fixture(scope="module")
def task_manager(tmp_path_factory, data_dir):
    from lm_eval.tasks import TaskManager

    from likra.harness import write_local_tasks

    return TaskManager(include_path=str(write_local_tasks(data_dir, tmp_path_factory.mktemp("lm-eval-tasks"))))


def lm_eval_run(task_manager, model_args: str) -> tuple[dict, list[list[float]]]:
    """lm-eval's metrics and its per-choice scores (as logged) on the first N ARC-Challenge test questions."""
    from lm_eval import simple_evaluate

    import likra.harness  # noqa: F401  (registers --model likra)

    out = simple_evaluate(
        model="likra",
        model_args=model_args,
        tasks=["arc_challenge_local"],
        limit=N,
        task_manager=task_manager,
        log_samples=True,
        bootstrap_iters=0,
    )
    samples = sorted(out["samples"]["arc_challenge_local"], key=lambda s: s["doc_id"])
    return out["results"]["arc_challenge_local"], [[float(r[0]) for r in s["filtered_resps"]] for s in samples]


@pytest.mark.parametrize(("mode", "weight"), [("likra", 0.5), ("sft", 1.0), ("negbase", 1.0), ("base", 1.0)])
def test_lm_eval_through_the_plugin_equals_likra_eval(run, task_manager, tiny_model_dir, data_dir, mode, weight):
    args = f"checkpoint={run},mode={mode},neg_weight={weight},model={tiny_model_dir}"
    metrics, scores = lm_eval_run(task_manager, args)
    config = EvalConfig(
        task="arc_challenge", limit=N, data_dir=str(data_dir), checkpoint=str(run), calibrate=False, neg_weight=weight
    )
    ours = evaluate(load_model(str(tiny_model_dir)), config)
    assert metrics["acc,none"] == ours.results["modes"][mode]["acc"]
    assert metrics["acc_norm,none"] == ours.results["modes"][mode]["acc_norm"]
    # the per-choice numbers lm-eval ranked are the mode's combined scores
    from likra.metrics import combine

    combined = [combine(item, mode, weight).loglikelihoods for item in ours.items]
    assert len(scores) == N
    for got, want in zip(scores, combined, strict=True):
        assert got == pytest.approx(want, abs=1e-4)
    if mode == "likra":  # the heads moved: the combination is not the base model's ranking in disguise
        assert combined != [item.loglikelihoods for item in ours.items]


def test_prefix_likra_through_the_plugin_equals_likra_eval(prefix_run, task_manager, tiny_model_dir, data_dir):
    metrics, scores = lm_eval_run(task_manager, f"checkpoint={prefix_run},mode=likra,model={tiny_model_dir}")
    config = EvalConfig(task="arc_challenge", limit=N, data_dir=str(data_dir), checkpoint=str(prefix_run),
                        calibrate=False)  # fmt: skip
    ours = evaluate(load_model(str(tiny_model_dir)), config)
    assert metrics["acc_norm,none"] == ours.results["modes"]["likra"]["acc_norm"]
    from likra.metrics import combine

    for got, item in zip(scores, ours.items, strict=True):
        assert got == pytest.approx(combine(item, "likra").loglikelihoods, abs=1e-4)


def test_plugin_refuses_bad_model_args(run, tiny_model_dir):
    from likra.harness import LikraLM

    with pytest.raises(LikraError, match="mode=likra: needs other heads"):
        LikraLM(mode="likra", model=str(tiny_model_dir))
    with pytest.raises(LikraError, match="unknown argument"):
        LikraLM(checkpoint=str(run), model=str(tiny_model_dir), temperature=1)
    with pytest.raises(LikraError, match="--mode sideways"):
        LikraLM(checkpoint=str(run), mode="sideways")


def test_likra_lm_eval_command(tiny_model_dir, data_dir, run, tmp_path):
    """``likra lm-eval`` is lm_eval's command line with the plugin registered and the local ARC tasks added."""
    args = ["lm-eval", "--model", "likra", "--tasks", "arc_challenge_local", "--limit", "4"]
    result = likra(*args, "--model_args", f"checkpoint={run},mode=sft,model={tiny_model_dir}", data_dir=data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "arc_challenge_local" in result.stdout and "acc_norm" in result.stdout
    # a refusal (the plugin's own ones are tested in process above): lm-eval logs its lines first, ours is the last,
    # with no traceback
    damaged = tmp_path / "damaged"
    shutil.copytree(run, damaged)
    for manifest in damaged.glob("step-*/likra.json"):
        manifest.write_text("[]")
    refused = likra(*args, "--model_args", f"checkpoint={damaged},model={tiny_model_dir}", data_dir=data_dir)
    last = refused.stderr.strip().splitlines()[-1]
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert last.startswith(f"error: {damaged}/step-") and last.endswith(
        "likra.json: expected a likra checkpoint manifest, got a JSON list"
    )


def test_the_plugin_is_declared_in_lm_eval_s_entry_point_group():
    """For lm-eval releases that load plugins from the ``lm_eval.models`` group (PR #4013)."""
    from importlib.metadata import entry_points

    from likra.harness import LikraLM

    (entry,) = entry_points(group="lm_eval.models", name="likra")
    assert entry.load() is LikraLM
