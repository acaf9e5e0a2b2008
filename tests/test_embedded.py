"""The real embedded model (SmolLM2-135M-Instruct) end to end, against lm-evaluation-harness."""

from __future__ import annotations

import pytest

from likra import EvalConfig, evaluate, load_model
from likra.metrics import correct

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedded():
    return load_model("smollm2-135m", dtype="float32")


def test_arc_challenge_agrees_with_lm_eval(embedded, data_dir):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from likra.evaluation import prepare

    config = EvalConfig(task="arc_challenge", limit=12, data_dir=str(data_dir))
    requests = prepare(config)
    result = evaluate(embedded, config, requests)
    pairs = [(c, x) for r in requests for c, x in zip(r.contexts, r.continuations, strict=True)]
    lm = HFLM(pretrained=embedded.model, tokenizer=embedded.tokenizer, batch_size=4)
    reference = [v for v, _ in lm.loglikelihood([Instance("loglikelihood", {}, p, i) for i, p in enumerate(pairs)])]
    ours = [v for item in result.items for v in item.loglikelihoods]
    assert max(abs(a - b) for a, b in zip(ours, reference, strict=True)) < 1e-3
    # and the accuracy lm-eval would report from its own numbers
    at, hits = 0, []
    for item in result.items:
        k = len(item.loglikelihoods)
        row = reference[at : at + k]
        hits.append(row.index(max(row)) == item.label)
        at += k
    assert correct(result.items, "acc") == hits
    assert result.results["metrics"]["acc"] == sum(hits) / len(hits)


def test_cli_eval_default_model(data_dir, tmp_path):
    from tests.test_cli import likra

    result = likra("eval", "--limit", "4", "--shots", "2", "--out", str(tmp_path / "r.json"), data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "arc_challenge · test · n=4 · 2-shot · smollm2-135m" in result.stdout
