"""Preference-learning baselines on Likra's data, trained by TRL: DPO and KTO.

The same questions in the same seeded order, the same negatives and the same LoRA settings as ``likra train``;
only the objective differs. DPO learns from (question, correct answer, negative answer) pairs; KTO from unpaired
answers labelled desirable or undesirable, the positives and negatives of each question, or the negatives alone.
Checkpoints are written at the same example counts (questions seen) as Likra's, in Likra's checkpoint format:
the trained policy is the one head, named ``positive``, so every evaluation path applies unchanged: mode ``sft``
ranks answers by the policy's likelihood, mode ``posbase`` by DPO's implicit reward (``L_policy - L_base``).

TRL does the optimisation (its losses, reference log-probabilities through the adapter-free base model, its
batching); we give it the rows in order (no shuffling, so step-K has seen exactly the first K questions), our
AdamW (so a run resumes from a checkpoint's optimiser state), and a callback that saves at the points. As TRL
does for plain-text rows, each completion ends with the EOS token in training; evaluation scores the answer
tokens, as for every other method.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from likra import parallel
from likra.checkpoints import (
    OPTIMIZER_STATE,
    Manifest,
    base_model_entry,
    check_resumable,
    list_checkpoints,
    manifest_of,
    prepare_out,
    quiet_peft,
    save_checkpoint,
)
from likra.configs import BASELINE_METHODS, BaselineConfig
from likra.errors import LikraError
from likra.files import check_outputs, claim, write_jsonl
from likra.loop import TrainResult, attach_heads, head_parameters, save_points
from likra.models import LoadedModel, describe, load_model
from likra.negatives import NEEDS_BASE_SCORES
from likra.progress import OnLoad, ProgressFactory, no_progress, quiet
from likra.training import TrainingSet, build_training_set, run_training, training_manifest
from likra.training_log import training_log

METHODS = BASELINE_METHODS
POLICY = "positive"  # the head name a baseline's policy is saved under (see the module docstring)


def run_baseline(
    config: BaselineConfig,
    out: str | Path,
    *,
    dtype: str = "auto",
    resume: bool = False,
    progress: ProgressFactory = no_progress,
    log: Callable[[str], None] = quiet,
    on_load: OnLoad = quiet,
) -> TrainResult:
    """``likra baseline dpo|kto`` from start to end, as ``likra.training.run_training`` runs ``likra train``."""
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # TRL's dataset preparation bars would interleave with the caller's
    return run_training(config, out, dtype=dtype, resume=resume, progress=progress, log=log, on_load=on_load,
                        method=train_baseline)  # fmt: skip


def export(config: BaselineConfig, out: str | Path, fmt: str) -> int:
    """``likra export --format dpo|kto``: Likra's training data written to ``out`` as TRL's rows; how many."""
    if fmt not in METHODS:
        raise LikraError(f"--format {fmt}: expected dpo or kto")
    rows = export_rows(replace(config, method=fmt), out)
    write_jsonl(out, rows, ensure_ascii=False)
    return len(rows)


def export_rows(config: BaselineConfig, out: str | Path | None = None) -> list[dict[str, Any]]:
    """Likra's training data for ``config`` as TRL's rows (``config.method``: dpo pairs or kto labels), one list;
    ``out``, the file they are meant for, is checked before any work."""
    check_outputs({"--out": out}, {"--train-file": config.train_file})
    loaded = load_model(config.model, device=config.device) if config.negatives in NEEDS_BASE_SCORES else None
    rows = preference_rows(build_training_set(config, loaded), config.method, config.kto_data)
    return [row for question in rows for row in question]


def preference_rows(data: TrainingSet, method: str, kto_data: str = "both") -> list[list[dict[str, Any]]]:
    """Per question, its rows in TRL's plain-text formats: DPO ``prompt/chosen/rejected``; KTO
    ``prompt/completion/label``. The prompt and answers are the pairs ``likra train`` learns from."""
    rows = []
    for question, positive, negative in zip(data.questions, data.positive, data.negative, strict=True):
        if len(negative) != 1:
            raise LikraError(f"question {question.id}: has {len(negative)} negatives; DPO and KTO need exactly one")
        (context, correct), (_, wrong) = positive, negative[0]
        if method == "dpo":
            rows.append([{"id": question.id, "prompt": context, "chosen": correct, "rejected": wrong}])
            continue
        unpaired = [{"id": question.id, "prompt": context, "completion": wrong, "label": False}]
        if kto_data == "both":
            unpaired.insert(0, {"id": question.id, "prompt": context, "completion": correct, "label": True})
        rows.append(unpaired)
    return rows


class _Checkpoints:
    """Counts questions seen, logs each step (``write``: ``likra.training_log``) and saves at the save points.
    Driven by TRL's per-step log (``logging_steps=1``), which comes after the step's optimiser update."""

    def __init__(
        self,
        start: int,
        start_step: int,
        per_step: int,
        points: list[int],
        save: Callable[[int, int, float], Path],
        write: Callable[[dict[str, Any]], None],
    ):
        self.start, self.start_step, self.per_step = start, start_step, per_step
        self.points, self.save, self.write = points, save, write
        self.interval: list[float] = []  # the losses since the last checkpoint
        self.checkpoints: list[Path] = []
        self.seen = start

    def logged(self, step: int, logs: dict[str, float]) -> int:
        """Record a step's log (``step`` counts from the start of this trainer, a resumed one too); returns the
        questions it added."""
        if "loss" not in logs:  # TRL's end-of-training summary
            return 0
        before, self.seen = self.seen, min(self.start + step * self.per_step, self.points[-1])
        step += self.start_step
        self.interval.append(float(logs["loss"]))
        record = {"step": step, "examples": self.seen, "loss": {POLICY: logs["loss"]}}
        record.update({k: v for k, v in logs.items() if k.startswith(("rewards/", "kl"))})
        self.write(record)
        if self.seen in self.points:
            self.checkpoints.append(self.save(self.seen, step, sum(self.interval) / len(self.interval)))
            self.interval = []
        return self.seen - before


def _callback(tracker: _Checkpoints, progress: Callable[[int], None] | None) -> Any:
    """The tracker as a ``transformers.TrainerCallback`` (built here, so importing this module stays cheap)."""
    from transformers import TrainerCallback

    class Callback(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            added = tracker.logged(state.global_step, logs or {})
            if progress is not None and added:
                progress(added)

    return Callback()


def train_baseline(
    loaded: LoadedModel,
    config: BaselineConfig,
    out: str | Path,
    *,
    resume: bool = False,
    data: TrainingSet | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``config.method`` with TRL on Likra's data for ``config`` and write checkpoints under ``out`` (claimed
    for the run: a second writer is refused)."""
    if parallel.launched():  # TRL would split the batches itself; the step → questions count assumes one process
        raise LikraError("likra baseline runs in one process; start it without accelerate launch")
    with claim(out):
        return _train_baseline(loaded, config, Path(out), resume, data, progress)


def _train_baseline(
    loaded: LoadedModel,
    config: BaselineConfig,
    out: Path,
    resume: bool,
    data: TrainingSet | None,
    progress: Callable[[int], None] | None,
) -> TrainResult:
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback

    resumed_from, resume_path = prepare_out(out, resume)
    data = data or build_training_set(config, loaded)
    per_question = preference_rows(data, config.method, config.kto_data)
    rows_per_question = len(per_question[0])
    total = len(per_question)
    points = save_points(total, config.save_at)
    manifest = replace(training_manifest(config, data, loaded.tokenizer, [POLICY]), method=config.method,
                       base_model=base_model_entry(loaded), hardware=describe(loaded))  # fmt: skip
    start_step = _resume_step(resume_path, manifest)
    remaining = [row for rows in per_question[resumed_from:] for row in rows]
    out.mkdir(parents=True, exist_ok=True)
    if resume_path is not None and progress is not None:  # a progress bar over the run starts at the checkpoint
        progress(resumed_from)
    if not remaining:
        return TrainResult(out, [], resumed_from, {}, 0.0, resumed_from)

    model = attach_heads(loaded.model, config, ["default"])  # TRL copies peft's "default" adapter as its reference
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="likra-trl-") as scratch, quiet_peft():
            trainer = _trainer(
                config, model, loaded.tokenizer, Dataset.from_list(remaining), rows_per_question, scratch
            )
            optimizer = _policy_optimizer(trainer, config, resume_path)
            trainer.optimizer = optimizer

            def save(seen: int, step: int, loss: float) -> Path:
                entry = replace(manifest, examples_seen=seen, steps=step, loss={POLICY: loss})
                unwrapped = trainer.accelerator.unwrap_model(trainer.model)
                return save_checkpoint(out, unwrapped, [POLICY], {POLICY: optimizer}, entry, default_adapter=True)

            for printer in (PrinterCallback, ProgressCallback):  # the log goes to train_log.jsonl instead
                trainer.remove_callback(printer)
            with training_log(out, config.report_to, resumed_from=resumed_from, first_step=start_step + 1,
                              config=manifest.config) as write:  # fmt: skip
                tracker = _Checkpoints(resumed_from, start_step, config.batch_size, points, save, write)
                trainer.add_callback(_callback(tracker, progress))
                trainer.train()
    finally:
        model.unload()  # the plain base model again, as ``fit`` leaves it
        loaded.model.eval()
    done = list_checkpoints(out)
    final = (manifest_of(done[-1][1]).loss or {}) if done else {}
    return TrainResult(out, tracker.checkpoints, tracker.seen, final, time.perf_counter() - start, resumed_from)


def _resume_step(resume_path: Path | None, manifest: Manifest) -> int:
    """The optimiser steps the checkpoint resumed from took (0 for a new run), after checking it is this run's."""
    if resume_path is None:
        return 0
    resumed = manifest_of(resume_path)
    check_resumable(resumed, manifest, resume_path)
    return resumed.steps or 0


def _policy_optimizer(trainer: Any, config: BaselineConfig, resume_path: Path | None) -> Any:
    """The policy's optimiser, and on resuming its weights and optimiser state (after TRL copied the base
    reference: only the policy resumes)."""
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights

    if resume_path is not None:
        weights = load_peft_weights(str(resume_path / POLICY))
        set_peft_model_state_dict(trainer.model, weights, adapter_name="default")
    optimizer = torch.optim.AdamW(head_parameters(trainer.model, "default"), lr=config.lr, weight_decay=0.0)
    if resume_path is not None:
        state = torch.load(resume_path / OPTIMIZER_STATE, weights_only=True, map_location="cpu")
        optimizer.load_state_dict(state[POLICY])
    return optimizer


def _trainer(config: BaselineConfig, model: Any, tokenizer: Any, dataset: Any, rows_per_question: int, scratch: str):
    """TRL's trainer for the method, with Likra's loop settings (constant learning rate, no weight decay, rows in
    order, one optimiser step per ``batch_size`` questions, nothing saved or reported by TRL itself)."""
    common = {
        "output_dir": scratch,
        "per_device_train_batch_size": config.batch_size * rows_per_question // config.grad_accum,
        "gradient_accumulation_steps": config.grad_accum,
        "learning_rate": config.lr,
        "lr_scheduler_type": "constant",
        "weight_decay": 0.0,
        "num_train_epochs": 1,
        "seed": config.seed,
        "data_seed": config.seed,
        "beta": config.beta,
        "max_length": config.max_length,
        "bf16": config.bf16,
        "train_sampling_strategy": "sequential",
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataset_num_proc": None,
        "use_cpu": model.device.type == "cpu",  # else TRL moves the model to cuda:LOCAL_RANK, where pick_device put it
        # TRL turns it on by default; a 135M-3B LoRA run fits without it, faster
        "gradient_checkpointing": config.gradient_checkpointing,
    }
    if config.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer(model=model, args=DPOConfig(**common), train_dataset=dataset, processing_class=tokenizer)
    from trl import KTOConfig, KTOTrainer

    return KTOTrainer(model=model, args=KTOConfig(**common), train_dataset=dataset, processing_class=tokenizer)
