"""Training the heads on the tiny model: the tokens it learns, the schedule, determinism, resume, safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from likra.checkpoints import HEADS, Checkpoint, list_checkpoints
from likra.data import build_requests, get_task
from likra.errors import LikraError
from likra.loop import attach_heads, save_points, schedule
from likra.models import LoadedModel
from likra.scoring import Scorer
from likra.training import TrainConfig, answer_loss, build_training_set, encode_examples, train

from .conftest import tiny_llama


def small_config(data_dir, **kw) -> TrainConfig:
    return TrainConfig(**{"n": 24, "data_dir": str(data_dir), "seed": 3, **kw})


def adapter_bytes(run: Path, examples: int) -> dict[str, bytes]:
    step = run / f"step-{examples}"
    return {h: (step / h / "adapter_model.safetensors").read_bytes() for h in ("positive", "negative")}


def test_training_pairs_are_the_evaluation_requests_token_for_token(data_dir, tokenizer):
    config = small_config(data_dir, n=40)
    data = build_training_set(config)
    requests = build_requests(get_task("arc_challenge"), data.questions)
    eval_pairs = [(r.contexts[r.item.label], r.continuations[r.item.label]) for r in requests]
    assert data.positive == eval_pairs
    scorer_tokens = Scorer(tiny_llama(len(tokenizer)), tokenizer).encode(eval_pairs)
    assert encode_examples(tokenizer, data.positive, 1024) == scorer_tokens
    for q, pairs, negs in zip(data.questions, data.negative, data.negatives, strict=True):
        (context, continuation) = pairs[0]
        assert context == eval_pairs[data.questions.index(q)][0] and continuation == " " + negs[0].text


def test_loss_is_the_negative_answer_log_likelihood_that_evaluation_scores(tokenizer):
    """Question masked, no EOS: the summed loss equals minus the scorer's log-likelihood of the answer."""
    model = tiny_llama(len(tokenizer))
    pairs = [
        ("Question: Which is a metal?\nAnswer:", " iron"),
        ("Question: Sky colour?\nAnswer:", " blue on a clear day"),
    ]
    encoded = encode_examples(tokenizer, pairs, 1024)
    loss, n_tokens = answer_loss(model, encoded)
    expected = Scorer(model, tokenizer).loglikelihoods(pairs)
    assert n_tokens == sum(e.n_tokens for e in expected)
    assert loss.item() == pytest.approx(-sum(e.logprob for e in expected), rel=1e-5)


def test_schedule_never_crosses_a_save_point():
    points = save_points(50)
    assert points == [8, 16, 32, 50]
    assert save_points(50, [10, 20, 99]) == [10, 20, 50]
    for batch_size in (3, 8, 12):
        batches = schedule(50, points, batch_size)
        assert [i for b in batches for i in b] == list(range(50))  # every example once, in order
        seen, reached = 0, []
        for batch in batches:
            assert len(batch) <= batch_size
            assert max(batch) < next(p for p in points if p > seen)  # drawn from the current interval
            seen += len(batch)
            reached.append(seen)
        assert set(points) <= set(reached)


def test_same_seed_gives_byte_identical_adapters(tmp_path, data_dir, fresh):
    config = small_config(data_dir)
    train(fresh(), config, tmp_path / "a")
    train(fresh(), config, tmp_path / "b")
    assert adapter_bytes(tmp_path / "a", 24) == adapter_bytes(tmp_path / "b", 24)
    assert adapter_bytes(tmp_path / "a", 8) != adapter_bytes(tmp_path / "a", 24)  # it did learn
    train(fresh(), small_config(data_dir, seed=4), tmp_path / "c")
    assert adapter_bytes(tmp_path / "a", 24) != adapter_bytes(tmp_path / "c", 24)


def test_checkpoint_layout_manifest_and_log(tmp_path, data_dir, fresh):
    loaded = fresh()
    result = train(loaded, small_config(data_dir), tmp_path / "run")
    assert not any("lora" in name for name, _ in loaded.model.named_modules())  # the caller gets the base back
    assert [p.name for p in result.checkpoints] == ["step-8", "step-16", "step-24"]
    manifest = json.loads((tmp_path / "run" / "step-16" / "likra.json").read_text())
    assert manifest["examples_seen"] == 16 and manifest["steps"] == 2
    assert manifest["base_model"]["hash"].startswith("sha256:")
    assert manifest["config"]["lr"] == 1e-3 and manifest["config"]["lora_r"] == 8
    assert manifest["data"]["pool_size"] == 6604 and manifest["data"]["dropped"] == 11
    assert set(manifest["loss"]) == {"positive", "negative"}
    # optimiser state is kept for the newest checkpoint only
    assert [p.name for _, p in list_checkpoints(tmp_path / "run") if (p / "optimizer.pt").exists()] == ["step-24"]
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["examples"] for r in log] == [8, 16, 24] and all(r["examples_per_s"] > 0 for r in log)


def test_heads_load_with_plain_peft_and_match_the_mixed_head_scorer(tmp_path, data_dir, fresh, tokenizer):
    from peft import PeftModel

    train(fresh(), small_config(data_dir), tmp_path / "run")
    step = tmp_path / "run" / "step-24"
    config = json.loads((step / "positive" / "adapter_config.json").read_text())
    assert config["r"] == 8 and sorted(config["target_modules"]) == ["down_proj", "gate_proj", "up_proj"]
    pairs = [("Question: Which is a metal?\nAnswer:", " iron"), ("Question: Which is a metal?\nAnswer:", " wood")]
    separate = {}
    for head in ("positive", "negative"):
        model = PeftModel.from_pretrained(tiny_llama(len(tokenizer)), str(step / head)).eval()
        separate[head] = [v.logprob for v in Scorer(model, tokenizer).loglikelihoods(pairs)]
    separate["base"] = [v.logprob for v in Scorer(tiny_llama(len(tokenizer)), tokenizer).loglikelihoods(pairs)]
    model = Checkpoint.open(step, loaded=fresh()).model
    mixed = Scorer(model, tokenizer, heads=("base", "positive", "negative")).loglikelihoods_by_head(pairs)
    for head, values in separate.items():
        assert [v.logprob for v in mixed[head]] == pytest.approx(values, abs=1e-5)
    assert separate["positive"] != pytest.approx(separate["base"], abs=1e-4)


def test_negative_head_alone_and_micro_batches(tmp_path, data_dir, fresh):
    train(fresh(), small_config(data_dir, heads="negative"), tmp_path / "neg")
    assert not (tmp_path / "neg" / "step-24" / "positive").exists()
    from likra.evaluation import EvalConfig, evaluate

    result = evaluate(fresh(), EvalConfig(limit=5, data_dir=str(data_dir), checkpoint=str(tmp_path / "neg")))
    assert result.results["mode"] == "negbase" and set(result.results["modes"]) == {"negbase", "base"}
    train(fresh(), small_config(data_dir), tmp_path / "whole")
    train(fresh(), small_config(data_dir, micro_batch_size=3), tmp_path / "micro")
    from safetensors.torch import load_file

    for head in ("negative",):
        alone = load_file(tmp_path / "neg" / "step-24" / head / "adapter_model.safetensors")
        both = load_file(tmp_path / "whole" / "step-24" / head / "adapter_model.safetensors")
        micro = load_file(tmp_path / "micro" / "step-24" / head / "adapter_model.safetensors")
        for name in both:
            assert torch.equal(alone[name], both[name])  # a head does not depend on the other being trained
            torch.testing.assert_close(micro[name], both[name], rtol=1e-3, atol=1e-5)  # accumulation: same step


def test_bf16_autocast_trains_close_to_float32(tmp_path, data_dir, fresh):
    from safetensors.torch import load_file

    train(fresh(), small_config(data_dir, heads="positive"), tmp_path / "f32")
    train(fresh(), small_config(data_dir, heads="positive", bf16=True), tmp_path / "bf16")
    manifest = json.loads((tmp_path / "bf16" / "step-24" / "likra.json").read_text())
    assert manifest["config"]["bf16"] is True
    f32 = load_file(tmp_path / "f32" / "step-24" / "positive" / "adapter_model.safetensors")
    bf16 = load_file(tmp_path / "bf16" / "step-24" / "positive" / "adapter_model.safetensors")
    assert all(t.dtype == torch.float32 for t in bf16.values())  # autocast only: the weights stay float32
    assert any(not torch.equal(f32[n], bf16[n]) for n in f32)  # the computation did run in bfloat16
    for name in f32:  # bfloat16 rounding moves single entries, not the adapter
        assert (bf16[name] - f32[name]).norm() < 0.1 * f32[name].norm()


def test_resume_after_an_interruption_ends_with_the_same_adapters(tmp_path, data_dir, fresh):
    config = small_config(data_dir)
    train(fresh(), config, tmp_path / "whole")

    def stop_at_24(n, seen=[0]):  # noqa: B006 - a counter that lives for this run only
        seen[0] += n
        if seen[0] == 24:  # interrupted before step-24 is saved
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(fresh(), config, tmp_path / "cut", progress=stop_at_24)
    assert [p.name for _, p in list_checkpoints(tmp_path / "cut")] == ["step-8", "step-16"]
    (tmp_path / "cut" / ".step-24.tmp").mkdir()  # as if killed while saving the next one
    with pytest.raises(LikraError, match="--resume"):
        train(fresh(), config, tmp_path / "cut")
    advanced: list[int] = []
    result = train(fresh(), config, tmp_path / "cut", resume=True, progress=advanced.append)
    assert result.resumed_from == 16
    assert advanced == [16, 8]  # a progress bar over the run starts at the checkpoint and ends full
    assert adapter_bytes(tmp_path / "cut", 24) == adapter_bytes(tmp_path / "whole", 24)
    assert not (tmp_path / "cut" / ".step-24.tmp").exists()
    log = [json.loads(line)["examples"] for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert log == [8, 16, 24]
    with pytest.raises(LikraError, match=r"options differ.*lr"):
        train(fresh(), small_config(data_dir, lr=5e-4), tmp_path / "cut", resume=True)


def test_a_run_extended_to_more_questions_equals_one_made_to_them_at_once(tmp_path, data_dir, fresh):
    train(fresh(), small_config(data_dir, n=40), tmp_path / "once")  # checkpoints 8, 16, 32, 40
    train(fresh(), small_config(data_dir, n=24), tmp_path / "grown")  # 8, 16, 24
    result = train(fresh(), small_config(data_dir, n=40), tmp_path / "grown", resume=True)
    assert result.resumed_from == 24 and [p.name for p in result.checkpoints] == ["step-32", "step-40"]
    for examples in (8, 16, 32, 40):  # continued, not retrained: the same bytes as the run made to 40 at once
        assert adapter_bytes(tmp_path / "grown", examples) == adapter_bytes(tmp_path / "once", examples)
    manifest = json.loads((tmp_path / "grown" / "step-40" / "likra.json").read_text())
    assert manifest["questions"] == 40 and manifest["steps"] == 5
    log = [json.loads(line)["examples"] for line in (tmp_path / "grown" / "train_log.jsonl").read_text().splitlines()]
    assert log == [8, 16, 24, 32, 40]
    with pytest.raises(LikraError, match=r"--n 16: .* holds a run on 40 questions"):
        train(fresh(), small_config(data_dir, n=16), tmp_path / "grown", resume=True)
    train(fresh(), small_config(data_dir, n=20), tmp_path / "odd")  # ends inside a batch of a run to 40
    with pytest.raises(LikraError, match="step-20 is not between two batches of a run to 40"):
        train(fresh(), small_config(data_dir, n=40), tmp_path / "odd", resume=True)
    with pytest.raises(LikraError, match=r"--epochs 2: a run is extended .* only with --epochs 1"):
        train(fresh(), small_config(data_dir, n=48, epochs=2), tmp_path / "once", resume=True)
    with pytest.raises(LikraError, match=r"options differ.*lr"):
        train(fresh(), small_config(data_dir, n=48, lr=5e-4), tmp_path / "grown", resume=True)


KILL_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from conftest import tiny_llama
from likra.models import LoadedModel, load_tokenizer
from likra.training import TrainConfig, train
tok = load_tokenizer({model_dir!r})
loaded = LoadedModel(tiny_llama(len(tok)), tok, "tiny", {model_dir!r}, "cpu", "float32")
config = TrainConfig(n=48, data_dir={data_dir!r}, seed=3, save_at=[8, 16, 24, 32, 40])
pause = float(sys.argv[2])  # seconds after each batch, so the test can kill it mid-run
train(loaded, config, sys.argv[1], resume=sys.argv[3:] == ["resume"], progress=lambda n: time.sleep(pause))
"""


def test_a_killed_process_resumes_to_the_same_adapters(tmp_path, data_dir, tiny_model_dir):
    script = tmp_path / "run.py"
    tests = str(Path(__file__).parent)
    script.write_text(KILL_SCRIPT.format(tests=tests, model_dir=str(tiny_model_dir), data_dir=str(data_dir)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "whole"), "0"], check=True, env=env, timeout=300)
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "cut"), "0.4"], env=env)
    deadline = time.time() + 240
    while not (tmp_path / "cut" / "step-16" / "likra.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = [n for n, _ in list_checkpoints(tmp_path / "cut")]
    assert 16 in done and 48 not in done
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "cut"), "0", "resume"], check=True, env=env, timeout=300
    )
    assert adapter_bytes(tmp_path / "cut", 48) == adapter_bytes(tmp_path / "whole", 48)


def test_a_diverging_run_stops_and_keeps_its_last_good_checkpoint(tmp_path, data_dir, fresh):
    with pytest.raises(LikraError, match=r"loss became (nan|inf).*last good checkpoint is .*step-\d+"):
        train(fresh(), small_config(data_dir, lr=1e30), tmp_path / "run")
    done = list_checkpoints(tmp_path / "run")
    assert done and all(
        torch.isfinite(torch.tensor(json.loads((p / "likra.json").read_text())["loss"]["positive"])) for _, p in done
    )


def test_a_checkpoint_refuses_another_base_model(tmp_path, data_dir, fresh, tokenizer):
    train(fresh(), small_config(data_dir), tmp_path / "run")
    other_dir = tmp_path / "other"
    tiny_llama(len(tokenizer), seed=1).save_pretrained(other_dir)
    other = LoadedModel(tiny_llama(len(tokenizer), 1), tokenizer, "other", str(other_dir), "cpu", "float32")
    with pytest.raises(LikraError, match="trained on base model tiny"):
        Checkpoint.open(tmp_path / "run", loaded=other)


def test_target_modules_that_do_not_exist_are_named(tokenizer):
    with pytest.raises(LikraError, match="--target-modules nope"):
        attach_heads(tiny_llama(len(tokenizer)), TrainConfig(target_modules=["nope"]), HEADS)


def test_prefix_likra_trains_one_adapter_on_both_kinds_with_the_prefix_out_of_the_loss(
    tmp_path, data_dir, fresh, tokenizer
):
    from likra.data.prompts import ANSWER_PREFIXES
    from likra.training import build_training_set, head_examples

    config = small_config(data_dir, method="prefix", n=4)
    data = build_training_set(config)
    examples = head_examples(tokenizer, config, data)
    assert list(examples) == ["prefix"] and [len(e) for e in examples["prefix"]] == [2, 2, 2, 2]  # +1 and -1
    answers = [data.positive[0][1], data.negative[0][0][1]]
    for (tokens, flags), kind, answer in zip(examples["prefix"][0], ("positive", "negative"), answers, strict=True):
        cut = flags.index(True)
        assert tokenizer.decode(tokens[:cut]).startswith(ANSWER_PREFIXES[kind])  # the line is context
        assert not any(flags[:cut]) and all(flags[cut:])  # only the answer is trained on
        assert tokenizer.decode(tokens[cut:]).strip() == answer.strip()
    train(fresh(), config, tmp_path / "run")
    step = tmp_path / "run" / "step-4"
    assert (step / "prefix" / "adapter_model.safetensors").is_file() and not (step / "positive").exists()
    with pytest.raises(LikraError, match="--heads negative: prefix Likra trains one adapter"):
        small_config(data_dir, method="prefix", heads="negative")
    with pytest.raises(LikraError, match="--method nope"):
        small_config(data_dir, method="nope")
