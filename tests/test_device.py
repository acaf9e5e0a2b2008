"""The device-sensitive paths (scoring with heads, shared prefixes and the two-phase path; a training step; the
verifier; resume), run on the device ``--device`` names (cpu by default, cuda where a GPU exists: values checked
against the CPU's) and on PyTorch's ``meta`` device, which refuses an operation that mixes devices as CUDA does,
so a tensor made on the CPU beside the model's fails here without a GPU. On ``meta`` nothing has a value: the one
place scoring reads numbers back (``Scorer._sum_by_owner``) is replaced by a stand-in that checks where its
inputs live. Also: how the device and dtype are chosen, the memory options, and the errors users see."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from likra.errors import LikraError
from likra.scoring import LogLikelihood, Scorer

from .conftest import tiny_llama
from .test_scoring import PAIRS, SHARED

HEADS = ("base", "positive", "negative")
SCORER_PATHS = {"packed": {}, "two-phase": {"batch_tokens": 1, "two_phase_from": 1}, "shared-prefix": {}}


@pytest.fixture(params=["given", "meta"])
def target(request: pytest.FixtureRequest, device: str) -> str:
    """The device under test: ``--device``'s, then ``meta``."""
    return device if request.param == "given" else "meta"


def no_readback(monkeypatch: pytest.MonkeyPatch) -> None:
    """On ``meta``: the per-request sums become zeros, after checking that the log-probabilities are the model's."""

    def sums(owners: list[int], token_logprobs: torch.Tensor, token_greedy: torch.Tensor):
        assert token_logprobs.device.type == token_greedy.device.type == "meta"
        counts: dict[int, int] = {}
        for owner in owners:
            counts[owner] = counts.get(owner, 0) + 1
        return [(owner, LogLikelihood(0.0, n, True)) for owner, n in counts.items()]

    monkeypatch.setattr(Scorer, "_sum_by_owner", staticmethod(sums))


def with_heads(tokenizer, seed: int = 0):
    """The tiny model with a positive and a negative LoRA head whose weights differ (B is random, not zero)."""
    from likra.configs import LoopConfig
    from likra.loop import attach_heads

    lora = LoopConfig(target_modules=["q_proj", "v_proj", "gate_proj"])
    model = attach_heads(tiny_llama(len(tokenizer), seed), lora, HEADS[1:])
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model.eval()


@pytest.mark.parametrize("path", SCORER_PATHS)
def test_scoring_with_heads_on_the_device(tokenizer, target, path, monkeypatch):
    pairs = SHARED if path == "shared-prefix" else PAIRS
    reference = Scorer(with_heads(tokenizer), tokenizer, heads=HEADS, **SCORER_PATHS[path])
    moved = Scorer(with_heads(tokenizer).to(target), tokenizer, heads=HEADS, **SCORER_PATHS[path])
    if path == "shared-prefix":
        assert [n for n, _ in moved._prefix_groups(moved._rows(moved.encode(pairs), [[None] * len(pairs)]))] != [0]
    if target == "meta":
        no_readback(monkeypatch)
        assert len(moved.loglikelihoods_by_head(pairs)["negative"]) == len(pairs)
        return
    expected, got = reference.loglikelihoods_by_head(pairs), moved.loglikelihoods_by_head(pairs)
    for head in HEADS:
        assert [v.logprob for v in got[head]] == pytest.approx([v.logprob for v in expected[head]], abs=1e-4)
        assert [v.greedy for v in got[head]] == [v.greedy for v in expected[head]]


def test_a_training_step_on_the_device(tokenizer, target):
    from likra.loop import token_loss
    from likra.training import answer_example

    examples = [answer_example([1, 2, 3, 4], [5, 6]), answer_example([7, 8], [9, 10, 11])]
    models = [("cpu", with_heads(tokenizer)), (target, with_heads(tokenizer).to(target))]
    losses = []
    for where, model in models:
        model.train()
        model.set_adapter("negative")
        loss, n_tokens = token_loss(model, examples)
        (loss / n_tokens).backward()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        optimizer.step()
        assert loss.device.type == torch.device(where).type
        losses.append(loss)
    if target != "meta":
        assert losses[1].item() == pytest.approx(losses[0].item(), abs=1e-4)
        cpu_b, moved_b = (next(p for n, p in m.named_parameters() if "lora_B.negative" in n) for _, m in models)
        assert torch.allclose(moved_b.detach().cpu(), cpu_b.detach(), atol=1e-5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer, tiny_model_dir, data_dir) -> str:
    """Two heads trained on 8 questions, in this process (no CLI: the GPU machine lacks the server's packages)."""
    from likra.models import LoadedModel
    from likra.training import TrainConfig, train

    out = tmp_path_factory.mktemp("device-run") / "run"
    loaded = LoadedModel(tiny_llama(len(tokenizer)), tokenizer, "tiny", str(tiny_model_dir), "cpu", "float32")
    train(loaded, TrainConfig(n=8, save_at=[8], data_dir=str(data_dir)), out)
    return str(out / "step-8")


def test_the_verifier_on_the_device(checkpoint, target, monkeypatch):
    from likra.verifier import Verifier, VerifierConfig

    rows = [{"id": "a", "question": "Which gas do plants take in?", "candidates": ["carbon dioxide", "oxygen"]},
            {"id": "b", "question": "What is 2 + 2?", "answer": "4"}]  # fmt: skip
    expected = Verifier(VerifierConfig(checkpoint=checkpoint)).score(rows)
    on_gpu = {"device": target} if target.startswith("cuda") else {}  # meta: loaded on the CPU, then moved
    verifier = Verifier(VerifierConfig(checkpoint=checkpoint, **on_gpu))
    assert verifier.loaded.device.split(":")[0] == ("cpu" if target == "meta" else target).split(":")[0]
    if target == "meta":
        verifier.checkpoint.model.to("meta")
        no_readback(monkeypatch)
        assert len(verifier.score(rows)) == 3
        return
    got = verifier.score(rows)
    assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected], abs=1e-4)


def test_a_run_trained_on_a_gpu_resumes_on_this_device(tokenizer, tiny_model_dir, data_dir, tmp_path, device,
                                                       monkeypatch):  # fmt: skip
    """The resume state records its tensors' device; a GPU's (``cuda:0``) must load where there is none."""
    import torch.serialization

    from likra.checkpoints import OPTIMIZER_STATE
    from likra.models import LoadedModel
    from likra.training import TrainConfig, train

    def loaded(where: str) -> LoadedModel:
        return LoadedModel(tiny_llama(len(tokenizer)).to(where), tokenizer, "tiny", str(tiny_model_dir), where,
                           "float32")  # fmt: skip

    config = TrainConfig(n=16, save_at=[8], data_dir=str(data_dir), target_modules=["q_proj", "v_proj"])
    train(loaded("cpu"), config, tmp_path / "alone")
    train(loaded("cpu"), TrainConfig(**{**config.__dict__, "n": 8}), tmp_path / "cut")
    state_file = tmp_path / "cut" / "step-8" / OPTIMIZER_STATE
    state = torch.load(state_file, weights_only=True)
    with monkeypatch.context() as patch:  # written as a GPU run writes it: every storage tagged cuda:0
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(state, state_file)
    train(loaded(device), config, tmp_path / "cut", resume=True)
    from safetensors.torch import load_file

    for head in ("positive", "negative"):
        resumed, alone = (load_file(str(tmp_path / run / "step-16" / head / "adapter_model.safetensors"))
                          for run in ("cut", "alone"))  # fmt: skip
        for key in alone:
            assert torch.allclose(resumed[key], alone[key], atol=1e-5), key


# --- choosing the device and the dtype -------------------------------------------------------------------


def test_auto_is_the_ranks_gpu_under_a_launcher_else_cuda_0_else_the_cpu(monkeypatch):
    from likra.models import pick_device

    chosen: list[int] = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert pick_device("auto") == "cuda:0"
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert pick_device("auto") == "cuda:2"
    assert pick_device("cuda:3") == "cuda:3"
    assert chosen == [0, 2, 3]  # each made the current device, before any model or process group uses one
    with pytest.raises(LikraError, match=r"^--device cuda:4: only 4 GPU\(s\) visible"):
        pick_device("cuda:4")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
@pytest.mark.parametrize("asked", ["cuda", "cuda:1"])
def test_asking_for_cuda_without_it_is_one_line(asked):
    from likra.models import pick_device

    with pytest.raises(LikraError, match=rf"^--device {asked}: CUDA is not available here \(.*\); use --device cpu"):
        pick_device(asked)


@pytest.mark.parametrize("asked", ["gpu", "cuda:x", "CUDA", ""])
def test_a_malformed_device_is_refused_before_torch_is_asked(asked):
    from likra.evaluation import EvalConfig

    with pytest.raises(LikraError, match=r"expected auto, cpu, cuda, cuda:N or mps"):
        EvalConfig(device=asked)


@pytest.mark.parametrize("native", ["0", "1"])
def test_auto_dtype_is_bfloat16_on_cuda_and_on_a_cpu_that_has_it_natively(monkeypatch, native):
    from likra.models import pick_dtype

    monkeypatch.setenv("LIKRA_NATIVE_BF16", native)
    assert pick_dtype("auto", "cuda:0") == torch.bfloat16
    assert pick_dtype("auto", "cpu") == (torch.bfloat16 if native == "1" else torch.float32)
    assert pick_dtype("auto", "cpu", training=True) == torch.float32  # CPU training keeps its float32 reference
    assert pick_dtype("float32", "cuda:0") == torch.float32


def test_native_bfloat16_is_read_from_the_cpu_flags(monkeypatch):
    from likra import models

    monkeypatch.delenv("LIKRA_NATIVE_BF16")
    for flags, native in (("fpu avx2 avx512f", False), ("avx512f avx512_bf16", True), ("amx_bf16 amx_tile", True)):
        monkeypatch.setattr(models, "_cpuinfo", lambda flags=flags: f"model name\t: Some CPU\nflags\t\t: {flags}\n")
        assert models.native_bf16() is native
        assert models.device_name("cpu") == "Some CPU" + (" (native bfloat16)" if native else "")


def test_models_load_straight_onto_their_device(tiny_model_dir, device):
    from likra.models import describe, load_model

    loaded = load_model(str(tiny_model_dir), device=device)
    assert {p.device.type for p in loaded.model.parameters()} == {torch.device(loaded.device).type}
    assert describe(loaded)["device"] == loaded.device and describe(loaded)["dtype"] == loaded.dtype


def test_a_gated_hub_model_names_the_repository_and_how_to_log_in(monkeypatch):
    from huggingface_hub.errors import GatedRepoError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from likra.models import load_model

    def gated(*args, **kwargs):
        try:
            raise GatedRepoError("401 Client Error", response=SimpleNamespace(headers={}, request=None))
        except GatedRepoError as err:
            raise OSError("You are trying to access a gated repo.") from err

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", gated)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", gated)
    with pytest.raises(LikraError, match=r"^--model meta-llama/Llama-3.2-3B: a gated repository on the Hub; accept "
                       r"its terms at https://huggingface.co/meta-llama/Llama-3.2-3B and log in"):  # fmt: skip
        load_model("meta-llama/Llama-3.2-3B", device="cpu")


# --- memory ---------------------------------------------------------------------------------------------


def test_out_of_memory_halves_the_budget_and_scores_the_same(tiny_model, tokenizer, monkeypatch, caplog):
    from likra import scoring

    expected = Scorer(tiny_model, tokenizer, batch_tokens=4096).loglikelihoods(PAIRS + SHARED)
    real = scoring.masked_hidden_states

    def small_device(model, ids, *args, **kwargs):  # a device that holds 600 tokens per pass
        if ids.numel() > 600:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, ids, *args, **kwargs)

    monkeypatch.setattr(scoring, "masked_hidden_states", small_device)
    scorer = Scorer(tiny_model, tokenizer, batch_tokens=4096, shared_prefix_from=0)
    with caplog.at_level("WARNING", logger="likra"):
        got = scorer.loglikelihoods(PAIRS + SHARED)
    assert [v.logprob for v in got] == pytest.approx([v.logprob for v in expected], abs=1e-5)
    assert scorer.batch_tokens < 4096 and scorer.backed_off >= 1
    said = [r.getMessage() for r in caplog.records if "out of memory" in r.getMessage()]
    assert len(said) == 1 and "going on at 2048" in said[0]  # said once, however often it halved


def test_a_row_too_long_for_the_device_alone_is_one_line(tiny_model, tokenizer, monkeypatch):
    from likra import scoring

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(scoring, "masked_hidden_states", no_memory)
    with pytest.raises(LikraError, match=r"^out of memory scoring a row of \d+ tokens under 1 head\(s\) alone"):
        Scorer(tiny_model, tokenizer).loglikelihoods(PAIRS[:1])


def test_auto_batch_tokens_is_the_cpu_budget_on_the_cpu(tiny_model):
    from likra.scoring import CPU_BATCH_TOKENS, auto_batch_tokens

    assert auto_batch_tokens(tiny_model) == CPU_BATCH_TOKENS == 1024  # CPU numbers unchanged by `auto`


@pytest.mark.parametrize("bad", ["0", "-5", "lots", "1.5"])
def test_batch_tokens_is_a_positive_number_or_auto(bad):
    from likra.evaluation import EvalConfig

    with pytest.raises(LikraError, match=rf"^--batch-tokens {bad}: expected a positive number of tokens or auto"):
        EvalConfig(batch_tokens=bad)
    for given, kept in ((" AUTO", "auto"), (512, "512"), ("2048", "2048")):
        config = EvalConfig(batch_tokens=given)
        assert config.batch_tokens == kept


def test_gradient_checkpointing_and_grad_accum_train_the_same_heads(fresh, data_dir, tmp_path):
    from safetensors.torch import load_file

    from likra.loop import is_checkpointing
    from likra.training import TrainConfig, train

    base = dict(n=8, save_at=[8], data_dir=str(data_dir), target_modules=["q_proj", "v_proj", "gate_proj"])
    variants = {"plain": {}, "checkpointing": {"gradient_checkpointing": True}, "accum": {"grad_accum": 4},
                "micro": {"micro_batch_size": 2}}  # fmt: skip
    heads = {}
    for name, options in variants.items():
        loaded = fresh()
        train(loaded, TrainConfig(**base, **options), tmp_path / name)
        assert not is_checkpointing(loaded.model)  # the caller gets its plain model back
        heads[name] = load_file(str(tmp_path / name / "step-8" / "negative" / "adapter_model.safetensors"))
    for key, value in heads["plain"].items():
        assert torch.allclose(heads["checkpointing"][key], value, atol=1e-6), key
        assert torch.equal(heads["accum"][key], heads["micro"][key]), key  # 4 passes of 2 questions each
    with pytest.raises(LikraError, match=r"^--grad-accum 2: give it or --micro-batch-size, not both"):
        TrainConfig(grad_accum=2, micro_batch_size=4)


def test_the_manifest_and_results_record_device_and_dtype(checkpoint, tiny_model_dir, data_dir, tmp_path):
    import json
    from pathlib import Path

    from .test_cli import likra

    manifest = json.loads((Path(checkpoint) / "likra.json").read_text())
    assert manifest["hardware"]["device"] == "cpu" and manifest["hardware"]["dtype"] == "float32"
    assert manifest["hardware"]["device_name"]
    result = likra("eval", "--model", str(tiny_model_dir), "--limit", "2", "--device", "cpu", "--out",
                   str(tmp_path / "r.json"), data_dir=data_dir)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "model " + str(tiny_model_dir) + " on cpu (" in result.stdout  # the run's header
    results = json.loads((tmp_path / "r.json").read_text())
    assert (results["device"], results["dtype"]) == ("cpu", "float32") and results["device_name"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_the_cli_refuses_cuda_without_it_in_one_line(tiny_model_dir, data_dir):
    from .test_cli import likra
    from .test_hardening import assert_one_line_error

    result = likra("eval", "--model", str(tiny_model_dir), "--limit", "2", "--device", "cuda", data_dir=data_dir)
    assert_one_line_error(result, "--device cuda: CUDA is not available here")


def test_every_command_that_loads_a_model_takes_device_and_the_scoring_ones_batch_tokens():
    import typer.main

    from likra.cli import app

    root = typer.main.get_command(app)

    def options(*path: str) -> set[str]:
        command = root
        for name in path:
            command = command.commands[name]
        return {flag for param in command.params for flag in getattr(param, "opts", [])}

    loading = [("eval",), ("score",), ("calibrate",), ("serve",), ("train",), ("baseline",), ("export",), ("curve",),
               ("ablate",), ("demo",), ("sweep",), ("mass",), ("nat", "train"), ("nat", "eval"), ("nat", "collect"),
               ("nat", "curve")]  # fmt: skip
    assert [c for c in loading if "--device" not in options(*c)] == []
    scoring = [("eval",), ("score",), ("calibrate",), ("serve",), ("curve",), ("ablate",), ("sweep",), ("mass",)]
    assert [c for c in scoring if "--batch-tokens" not in options(*c)] == []
    training = [("train",), ("baseline",), ("curve",), ("ablate",), ("nat", "train"), ("nat", "curve")]
    assert [c for c in training if "--gradient-checkpointing" not in options(*c)] == []
    assert {"--batch-size", "--grad-accum", "--lr"} <= options("curve")  # the paper's recipe is one command
