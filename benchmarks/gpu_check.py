"""likra on a GPU, checked and measured by one prepared script (issue 36): run it first whenever a GPU is at hand.

Steps, each timed and recorded in the JSON as it finishes (a run cut short keeps what it measured):

1. ``env``: versions, the GPU, the CPU.
2. ``device_tests``: ``tests/test_device.py --device DEVICE`` (scoring with heads, shared prefixes, two-phase rows,
   a training step, the verifier, resume; also on ``meta``).
3. ``tiny_vs_cpu``: a tiny random Llama with the real tokenizer and two random LoRA heads scores ARC-Challenge
   test questions on the device and on the CPU: float32 within 1e-4, and bfloat16's picks against float32's.
4. ``train_resume``: that model trains 16 questions on the device, stops at 8, and resumes on the CPU; its heads
   against the device's uninterrupted run.
5. ``big_scoring``: a model of Mistral-7B's shape (``AutoConfig`` from ``mistral-7b-config.json``, random weights,
   no download) with two LoRA heads scores 1172 ARC-shaped questions (4 answers each and their calibration
   controls, lengths drawn from the real ARC test when its data and a tokenizer are at hand) under base + two
   heads, at several token budgets, one of them forced to back off from out-of-memory (the GPU's memory capped
   with ``torch.cuda.set_per_process_memory_fraction``): seconds, tokens/s, peak memory.
6. ``big_training``: 50 optimiser steps of both heads at batch 8 and 32 questions, with and without gradient
   checkpointing: seconds per step, tokens/s, peak memory.
7. ``estimate``: from those rates, the wall time of the paper's ARC experiment on this GPU (a curve to the whole
   pool, 4221 questions, in 3 seeds: both heads trained at batch 32 with gradient checkpointing, every checkpoint
   scored on the 1172 test questions under its two heads, the base model once).

``--dry-run`` runs the same steps with small shapes on the CPU (the test suite does, so the script cannot rot).

Usage, on a GPU machine, from the repository root (under 8 minutes on one H100):
    python benchmarks/gpu_check.py --data-dir DATA --tokenizer TOKENIZER_DIR --json results/gpu/gpu_check.json
(``results/gpu/run.sh`` prepares DATA and TOKENIZER_DIR to carry and prints the device command.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout that was never installed (the GPU machine's)

import torch  # noqa: E402

QUESTIONS = 1172  # ARC-Challenge test
POOL = 4221  # the ARC pool with ARC-Easy test kept out (docs/results.md)
SEEDS = 3
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=512, tie_word_embeddings=True)  # fmt: skip
SMALL_BIG = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2)  # fmt: skip  # the dry run's stand-in for Mistral-7B's shape


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="results/gpu/gpu_check.json")
    parser.add_argument("--dry-run", action="store_true", help="Small shapes on the CPU (the test suite's run).")
    parser.add_argument("--device", default=None, help="Default: cuda:0 (the dry run: cpu).")
    parser.add_argument("--data-dir", default=os.environ.get("LIKRA_DATA_DIR") or str(ROOT.parent / "shared/data"))
    parser.add_argument("--tokenizer", default=None, help="A tokenizer folder (default: the embedded model's).")
    parser.add_argument("--config", default=str(Path(__file__).with_name("mistral-7b-config.json")))
    parser.add_argument("--steps", type=int, default=None, help="Training steps per setting (default 50; dry: 2).")
    parser.add_argument("--skip", default="", help="Steps to leave out, comma-separated.")
    args = parser.parse_args(argv)
    device = args.device or ("cpu" if args.dry_run else "cuda:0")
    report: dict[str, Any] = {"dry_run": args.dry_run, "device": device, "steps": {}}
    out = Path(args.json)
    context = Context(args, device, out)
    steps: dict[str, Callable[[Context], dict[str, Any]]] = {
        "env": env, "device_tests": device_tests, "tiny_vs_cpu": tiny_vs_cpu, "train_resume": train_resume,
        "big_scoring": big_scoring, "big_training": big_training, "estimate": estimate}  # fmt: skip
    for name, step in steps.items():
        if name in args.skip.split(","):
            continue
        started = time.perf_counter()
        try:
            result = {"ok": True, **step(context)}
        except Exception as err:  # one failed step is recorded; the others still run
            first = str(err).splitlines()[0][:300] if str(err) else ""
            result = {"ok": False, "error": f"{type(err).__name__}: {first}"}
        result["seconds"] = round(time.perf_counter() - started, 1)
        report["steps"][name] = context.results[name] = result
        print(f"{name}: {'ok' if result['ok'] else 'FAILED ' + result['error']} ({result['seconds']} s)", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    return report


class Context:
    """What the steps share: the options, the device, the tokenizer and data when at hand, earlier results."""

    def __init__(self, args: argparse.Namespace, device: str, out: Path) -> None:
        self.args, self.device, self.dry = args, device, args.dry_run
        self.results: dict[str, dict[str, Any]] = {}
        self.steps = args.steps or (2 if self.dry else 50)
        self.data_dir = args.data_dir if (Path(args.data_dir) / "arc").is_dir() else None
        self._tokenizer: Any = None

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from likra.models import load_tokenizer, prepare_embedded

            self._tokenizer = load_tokenizer(self.args.tokenizer or str(prepare_embedded()))
        return self._tokenizer

    def peak_reset(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        return round(torch.cuda.max_memory_allocated() / 2**30, 2) if self.device.startswith("cuda") else None

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()


# --- 1, 2: the machine and the device tests ---------------------------------------------------------------


def env(ctx: Context) -> dict[str, Any]:
    import peft
    import transformers

    from likra.models import device_name, pick_device

    device = pick_device(ctx.device)
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "transformers": transformers.__version__, "peft": peft.__version__, "device": device,
            "device_name": device_name(device), "cpu": device_name("cpu")}  # fmt: skip
    if device.startswith("cuda"):
        free, total = torch.cuda.mem_get_info()
        info |= {"gpu_memory_gib": round(total / 2**30, 1), "gpu_free_gib": round(free / 2**30, 1)}
    return info


def device_tests(ctx: Context) -> dict[str, Any]:
    """The device-sensitive tests on this device (the dry run: a quick subset, to keep the suite short)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests/test_device.py"),
               "--device", ctx.device]  # fmt: skip
    if ctx.dry:
        command += ["-k", "auto_dtype or malformed_device"]
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    if ctx.args.tokenizer:
        environ["LIKRA_TEST_TOKENIZER"] = ctx.args.tokenizer
    if ctx.data_dir:
        environ["LIKRA_DATA_DIR"] = ctx.data_dir
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=environ, timeout=420)
    lines = (done.stdout + done.stderr).strip().splitlines()
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    return {"returncode": done.returncode, "summary": lines[-1] if lines else "", "failed": failed[:20]}


# --- 3, 4: the tiny model on the device against the CPU ---------------------------------------------------


def tiny_model(ctx: Context, heads: bool = True) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    from likra.configs import LoopConfig
    from likra.loop import attach_heads

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(ctx.tokenizer), **TINY)).eval()
    if not heads:
        return model
    model = attach_heads(model, LoopConfig(target_modules=["q_proj", "v_proj", "gate_proj"]), ["positive", "negative"])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # heads that differ from the base model and from each other
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model.eval()


def arc_requests(ctx: Context, n: int) -> list[Any]:
    from likra.data import build_requests, get_task, load_items

    if ctx.data_dir is None:
        raise RuntimeError(f"no ARC data in {ctx.args.data_dir} (give --data-dir)")
    task = get_task("arc_challenge")
    return build_requests(task, load_items(task, "test", ctx.data_dir)[:n])


def tiny_vs_cpu(ctx: Context) -> dict[str, Any]:
    from likra.item_scores import of_model, score_requests
    from likra.metrics import argmax
    from likra.scoring import Scorer
    from likra.verifier_metrics import option_scores

    requests = arc_requests(ctx, 12 if ctx.dry else 300)
    heads = ("base", "positive", "negative")

    def scored(device: str, dtype: torch.dtype) -> list[Any]:
        model = tiny_model(ctx).to(device=device, dtype=dtype)
        return score_requests(of_model(Scorer(model, ctx.tokenizer, heads=heads)), requests)

    reference = scored("cpu", torch.float32)
    same, low = scored(ctx.device, torch.float32), scored(ctx.device, torch.bfloat16)

    def flat(items: list[Any]) -> list[float]:
        return [v for s in items for h in ("positive", "negative") for v in s.heads[h]] + [
            v for s in items for v in s.loglikelihoods]  # fmt: skip

    def picks(items: list[Any]) -> list[int]:
        return [argmax(option_scores(s, "likra", "acc_norm")) for s in items]

    largest = max(abs(a - b) for a, b in zip(flat(same), flat(reference), strict=True))
    agree = sum(a == b for a, b in zip(picks(low), picks(reference), strict=True)) / len(requests)
    return {"questions": len(requests), "float32_max_abs_diff": largest, "float32_within_1e-4": largest <= 1e-4,
            "bfloat16_same_picks": agree, "bfloat16_all_same": agree == 1.0}  # fmt: skip


def train_resume(ctx: Context) -> dict[str, Any]:
    from safetensors.torch import load_file

    from likra.models import LoadedModel
    from likra.training import TrainConfig, train

    if ctx.data_dir is None:
        raise RuntimeError(f"no ARC data in {ctx.args.data_dir} (give --data-dir)")

    def loaded(device: str) -> LoadedModel:
        return LoadedModel(tiny_model(ctx, heads=False).to(device), ctx.tokenizer, "tiny", "tiny", device, "float32")

    config = TrainConfig(n=16, save_at=[8], data_dir=ctx.data_dir, target_modules=["q_proj", "v_proj"])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        train(loaded(ctx.device), config, out / "device")
        train(loaded(ctx.device), TrainConfig(**{**config.__dict__, "n": 8}), out / "moved")
        train(loaded("cpu"), config, out / "moved", resume=True)  # the state saved on the device, resumed here
        largest = 0.0
        for head in ("positive", "negative"):
            a, b = (load_file(str(out / run / "step-16" / head / "adapter_model.safetensors")) for run in
                    ("device", "moved"))  # fmt: skip
            largest = max(largest, *((a[k] - b[k]).abs().max().item() for k in a))
    return {"resumed_on": "cpu", "max_abs_diff_vs_device_run": largest, "within_1e-4": largest <= 1e-4}


# --- 5, 6: a model of Mistral-7B's shape ------------------------------------------------------------------


def big_model(ctx: Context) -> Any:
    """Mistral-7B's architecture with random weights, made on the device in bfloat16 (the dry run: a small one)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from likra.configs import LoopConfig
    from likra.loop import attach_heads

    raw = json.loads(Path(ctx.args.config).read_text())
    if ctx.dry:
        raw |= SMALL_BIG
    config = AutoConfig.for_model(**raw)
    dtype = torch.float32 if ctx.dry else torch.bfloat16
    torch.manual_seed(0)
    with torch.device(ctx.device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return attach_heads(model, LoopConfig(), ["positive", "negative"]).eval(), config


def arc_lengths(ctx: Context) -> tuple[list[int], list[int]]:
    """Token lengths of ARC-Challenge test contexts and answers (the real ones, under the tokenizer at hand, when the
    data is; else an assumed spread)."""
    try:
        requests = arc_requests(ctx, QUESTIONS)
        from likra.scoring import encode_pairs

        pairs = encode_pairs(ctx.tokenizer, [(c, x) for r in requests for c, x in zip(r.contexts, r.continuations,
                                                                                    strict=True)])  # fmt: skip
        return [len(c) for c, _ in pairs[::4]], [len(x) for _, x in pairs]
    except Exception:  # no data or tokenizer here: an assumed spread (contexts 12-110 tokens, answers 1-30)
        rng = random.Random(0)
        return [rng.randint(12, 110) for _ in range(QUESTIONS)], [rng.randint(1, 30) for _ in range(4 * QUESTIONS)]


def arc_shaped(ctx: Context, vocab: int, questions: int) -> list[tuple[list[int], list[int]]]:
    """``questions`` questions of random tokens with ARC's lengths: 4 answers after each context, and the 4 answers'
    calibration controls after a bare "Answer:" (as ``likra eval`` scores them)."""
    contexts, answers = arc_lengths(ctx)
    rng = random.Random(1)
    cue = [rng.randrange(3, vocab) for _ in range(2)]
    pairs = []
    for q in range(questions):
        context = [rng.randrange(3, vocab) for _ in range(contexts[q % len(contexts)])]
        choices = [[rng.randrange(3, vocab) for _ in range(answers[(4 * q + k) % len(answers)])] for k in range(4)]
        pairs += [(context, c) for c in choices] + [(cue, c) for c in choices]
    return pairs


@contextmanager
def memory_capped(ctx: Context, gib: float) -> Iterator[None]:
    """Let the pass see only ``gib`` GiB more than is in use (the dry run: a stand-in that runs out above 2048
    padded tokens), so that a large budget must back off."""
    from likra import scoring

    if ctx.device.startswith("cuda"):
        total = torch.cuda.get_device_properties(torch.device(ctx.device)).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_allocated() + gib * 2**30) / total))
        try:
            yield
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0)
        return
    real = scoring.masked_hidden_states

    def small(model: Any, ids: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if ids.numel() > 2048:
            raise torch.OutOfMemoryError("out of memory (the dry run's stand-in)")
        return real(model, ids, *args, **kwargs)

    scoring.masked_hidden_states = small
    try:
        yield
    finally:
        scoring.masked_hidden_states = real


def big_scoring(ctx: Context) -> dict[str, Any]:
    from likra.scoring import Scorer, auto_batch_tokens

    model, config = big_model(ctx)
    questions = 24 if ctx.dry else QUESTIONS
    pairs = arc_shaped(ctx, config.vocab_size, questions)
    tokens = sum(len(c) + len(x) for c, x in pairs)  # each pair's tokens, as a harness without sharing runs them
    auto = auto_batch_tokens(model)
    Scorer(model, _Tokens(), heads=("base", "positive", "negative")).loglikelihoods_tokens_by_head(pairs[:64])  # warm
    runs = []
    budgets = [("auto", auto, None), ("4096", 4096, None), ("16384", 16384, None),
               ("65536 capped", 65536, 6.0)]  # fmt: skip
    if ctx.dry:
        budgets = [("auto", auto, None), ("512", 512, None), ("8192 capped", 8192, 0.0)]
    for name, budget, cap in budgets:
        scorer = Scorer(model, _Tokens(), batch_tokens=budget, heads=("base", "positive", "negative"))
        ctx.peak_reset()
        start = time.perf_counter()
        with memory_capped(ctx, cap) if cap is not None else nullcontext():
            scorer.loglikelihoods_tokens_by_head(pairs)
        ctx.sync()
        seconds = time.perf_counter() - start
        runs.append({"budget": name, "batch_tokens_start": budget, "batch_tokens_end": scorer.batch_tokens,
                     "backed_off": scorer.backed_off, "seconds": round(seconds, 2),
                     "pair_tokens_per_s": round(3 * tokens / seconds), "peak_gib": ctx.peak_gib()})  # fmt: skip
    del model
    best = min(runs, key=lambda r: r["seconds"])
    return {"questions": questions, "requests": len(pairs), "pair_tokens_per_head": tokens, "heads": 3,
            "auto_batch_tokens": auto, "runs": runs, "best": best["budget"],
            "seconds_per_1172_questions_3_heads": best["seconds"] * QUESTIONS / questions}  # fmt: skip


class _Tokens:
    """What the engine reads of a tokenizer when it is given token ids (the random model has none)."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0


def big_training(ctx: Context) -> dict[str, Any]:
    from likra.loop import checkpointing as set_checkpointing
    from likra.loop import token_loss
    from likra.training import answer_example

    model, config = big_model(ctx)
    contexts, answers = arc_lengths(ctx)
    rng = random.Random(2)
    params = {h: [p for n, p in model.named_parameters() if f".{h}." in n] for h in ("positive", "negative")}
    optimizers = {h: torch.optim.AdamW(params[h], lr=1e-4, weight_decay=0.0) for h in params}
    runs = []
    for batch in (8, 32):
        for checkpointing in (False, True):
            set_checkpointing(model.base_model.model, checkpointing)
            model.train()
            ctx.peak_reset()
            trained, start = 0, time.perf_counter()
            for _ in range(ctx.steps):
                examples = []
                for _ in range(batch):
                    context = [rng.randrange(3, config.vocab_size) for _ in range(rng.choice(contexts))]
                    examples.append(answer_example(context, [rng.randrange(3, config.vocab_size)
                                                             for _ in range(rng.choice(answers))]))  # fmt: skip
                trained += sum(len(t) for t, _ in examples)
                for head in ("positive", "negative"):  # Likra's step: one optimiser step per head on the batch
                    model.set_adapter(head)
                    loss, n = token_loss(model, examples)
                    (loss / n).backward()
                    optimizers[head].step()
                    optimizers[head].zero_grad(set_to_none=True)
            ctx.sync()
            seconds = time.perf_counter() - start
            runs.append({"batch": batch, "gradient_checkpointing": checkpointing, "steps": ctx.steps,
                         "seconds_per_step": round(seconds / ctx.steps, 3),
                         "tokens_per_s": round(2 * trained / seconds),
                         "peak_gib": ctx.peak_gib()})  # fmt: skip
    return {"runs": runs, "heads": 2}


# --- 7: the paper's experiment on this GPU ----------------------------------------------------------------


def estimate(ctx: Context) -> dict[str, Any]:
    """Wall time of the ARC curve to the whole pool in 3 seeds, from the measured rates."""
    from likra.loop import save_points

    scoring, training = ctx.results["big_scoring"], ctx.results["big_training"]
    recipe = next(r for r in training["runs"] if r["batch"] == 32 and r["gradient_checkpointing"])
    per_seed_training = math.ceil(POOL / 32) * recipe["seconds_per_step"]
    checkpoints = len(save_points(POOL))
    two_heads = scoring["seconds_per_1172_questions_3_heads"] * 2 / 3  # the base model is scored once per curve
    total = SEEDS * (per_seed_training + checkpoints * two_heads) + scoring["seconds_per_1172_questions_3_heads"] / 3
    return {"pool": POOL, "seeds": SEEDS, "checkpoints_per_seed": checkpoints, "recipe": "batch 32, bf16, "
            "gradient checkpointing, lr 1e-4", "training_s_per_seed": round(per_seed_training),
            "scoring_s_per_checkpoint": round(two_heads), "total_s": round(total), "total_h": round(total / 3600, 2),
            "from_dry_run": ctx.dry}  # fmt: skip


if __name__ == "__main__":
    main()
