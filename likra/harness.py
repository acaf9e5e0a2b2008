"""Likra as an lm-evaluation-harness model: ``--model likra`` runs any lm-eval multiple-choice task in any mode.

Importing this module registers the model with lm-eval (``lm_eval.api.registry.register_model``). lm-eval 0.4
discovers no out-of-tree models from its command line, so ``likra lm-eval ARGS`` is ``lm_eval ARGS`` with this
module imported first; from Python, ``import likra.harness`` before ``lm_eval.simple_evaluate(model="likra")``.

``loglikelihood`` returns the mode's combined score per request (``L+ - w·L-`` for ``mode=likra``), not a
normalised probability, so lm-eval's ``acc`` (the sum) and ``acc_norm`` (per character of the choice) mean for
Likra what they mean for one model, and equal ``likra eval``'s ``acc`` and ``acc_norm``. Every head is scored in
one forward pass by our engine (``likra.scoring.Scorer``, contexts shared across the choices).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from likra.checkpoints import Checkpoint, read_manifest
from likra.errors import LikraError
from likra.files import write_text
from likra.metrics import check_mode, mode_coefficients
from likra.models import DEFAULT_MODEL, load_model
from likra.options import check_batch_tokens
from likra.scoring import Scorer

logger = logging.getLogger(__name__)


@register_model("likra")
class LikraLM(LM):
    """``--model_args checkpoint=DIR,mode=likra,neg_weight=1.0[,model=NAME,dtype=...,batch_tokens=...]``.

    ``model`` defaults to the checkpoint's base model (or the embedded model without a checkpoint); ``mode``
    defaults to the first of likra, sft, negbase that the checkpoint's heads allow (``base`` without one)."""

    def __init__(
        self,
        checkpoint: str | None = None,
        mode: str | None = None,
        neg_weight: float = 1.0,
        model: str | None = None,
        dtype: str = "auto",
        device: str | None = "auto",
        batch_tokens: int | str = "auto",
        batch_size: Any = None,  # lm-eval's own options: our batches are bounded by tokens, not requests
        max_batch_size: Any = None,
        **unknown: Any,
    ) -> None:
        super().__init__()
        if unknown:
            raise LikraError(f"--model_args: unknown argument(s) {', '.join(unknown)} for --model likra")
        if mode is not None:
            check_mode(mode)
        budget = check_batch_tokens(batch_tokens)
        tokens = None if budget == "auto" else int(budget)
        heads = read_manifest(checkpoint)[1].scored_heads if checkpoint else []  # checked before any model loads
        self.mode = mode or next((m for m in ("likra", "sft", "negbase") if _allows(m, heads)), "base")
        if not _allows(self.mode, heads):
            where = f"checkpoint {checkpoint} has heads {', '.join(heads)}" if checkpoint else "no checkpoint given"
            raise LikraError(f"--model_args mode={self.mode}: needs other heads ({where})")
        self.coefficients = mode_coefficients(self.mode, float(neg_weight))
        self.checkpoint, self.scorer = None, None
        if checkpoint:  # refuses an agent's checkpoint and another base model
            self.checkpoint = Checkpoint.open(checkpoint, model=model, dtype=dtype, device=_device(device),
                                              batch_tokens=tokens)  # fmt: skip
            self.loaded = self.checkpoint.loaded
        else:
            self.loaded = load_model(model or DEFAULT_MODEL, dtype=dtype, device=_device(device))
            self.scorer = Scorer(self.loaded.model, self.loaded.tokenizer, batch_tokens=tokens)

    def _by_head(self, pairs: list[Any], progress: Any) -> dict[str, list[Any]]:
        """The log-likelihoods of the heads the mode uses (all in one pass, or per kind for prefix Likra)."""
        if self.checkpoint is not None:
            return self.checkpoint.loglikelihoods(pairs, progress, heads=tuple(self.coefficients))
        assert self.scorer is not None
        return {"base": self.scorer.loglikelihoods(pairs, progress)}

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Per request, the mode's weighted sum of the heads' log-likelihoods, and whether the first head of the
        mode (positive for likra and sft, base for negbase) decodes the continuation greedily."""
        pairs = [tuple(request.args) for request in requests]
        with tqdm(total=len(pairs), disable=disable_tqdm or self.rank != 0, desc="likra scoring") as bar:
            by_head = self._by_head(pairs, bar.update)
        first = next(iter(self.coefficients))
        return [
            (sum(c * by_head[head][i].logprob for head, c in self.coefficients.items()), by_head[first][i].greedy)
            for i in range(len(pairs))
        ]

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        raise LikraError("--model likra scores multiple-choice tasks only (no perplexity tasks)")

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        raise LikraError("--model likra scores multiple-choice tasks only (no generation tasks)")


def _device(asked: str | None) -> str:
    """lm-eval's command line always asks for cuda:0; as its own ``hf`` model does, fall back to the CPU."""
    import torch

    if asked and asked.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("--device %s: CUDA is not available; running on the CPU", asked)
        return "cpu"
    return asked or "auto"


def _allows(mode: str, heads: list[str]) -> bool:
    return set(mode_coefficients(mode, 1.0)) <= {"base", *heads}


# lm-eval's own ARC prompt (its arc_challenge / arc_easy YAML), reading the local JSONL files instead of the Hub.
_ARC_TASK = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    train: {folder}/{name}-Train.jsonl
    validation: {folder}/{name}-Dev.jsonl
    test: {folder}/{name}-Test.jsonl
output_type: multiple_choice
training_split: train
validation_split: validation
test_split: test
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{choices.label.index(answerKey)}}}}"
doc_to_choice: "{{{{choices.text}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""
LOCAL_TASKS = {"arc_challenge_local": "ARC-Challenge", "arc_easy_local": "ARC-Easy"}


def write_local_tasks(data_dir: str | Path, out_dir: str | Path) -> Path:
    """lm-eval task YAMLs ``arc_challenge_local`` and ``arc_easy_local`` over the ARC files in ``data_dir/arc``
    (for ``--include_path``, offline); returns ``out_dir``."""
    folder = Path(data_dir).expanduser().resolve() / "arc"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for task, name in LOCAL_TASKS.items():
        if not (folder / f"{name}-Test.jsonl").is_file():
            raise LikraError(f"--data-dir {data_dir}: no {name}-Test.jsonl in {folder}")
        write_text(out / f"{task}.yaml", _ARC_TASK.format(task=task, folder=folder, name=name))
    return out
