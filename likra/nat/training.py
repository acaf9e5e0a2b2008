"""Negative-aware training: fine-tune an agent on successful and failed trajectories, each introduced by the
template's prefix, with the loss on the agent turns flagged for it. The loop, checkpoints and resume are
``likra.loop.fit``'s; this module only turns trajectories into token examples.

Read top to bottom: ``NATConfig`` → ``select_trajectories`` (leakage guard, seeded ``pos_num``/``neg_num``
samples, one seeded order) → ``train_agent``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from likra.checkpoints import FULL, NAT_FORMAT, Manifest
from likra.data.pools import normalize_text
from likra.errors import LikraError
from likra.loop import TrainResult, fit
from likra.models import LoadedModel, load_model
from likra.nat.configs import NATConfig
from likra.nat.tasks import get_agent_task, load_problems
from likra.nat.templates import encode_trajectory
from likra.nat.trajectories import Trajectory, read_trajectories
from likra.progress import OnLoad, ProgressFactory, no_progress, quiet
from likra.version import __version__

AGENT = "agent"  # the LoRA adapter's name (a plain peft folder step-K/agent/)


@dataclass
class AgentData:
    """The trajectories in training order, and what the leakage guard dropped."""

    trajectories: list[Trajectory]
    positives: int
    negatives: int
    dropped: int  # trajectories of evaluation questions
    empty: int  # trajectories with no agent turn to learn from (the NAT release has a few)

    def hash(self) -> str:
        payload = json.dumps([asdict(t) for t in self.trajectories], ensure_ascii=False, sort_keys=True).encode()
        return "sha256:" + hashlib.sha256(payload).hexdigest()


def _read(files: Sequence[str], problems: Sequence[Any], want: bool, option: str) -> list[Trajectory]:
    out = []
    for file in files:
        found = read_trajectories(file, problems)
        wrong = sum(t.reward != want for t in found)
        if wrong:
            kind = "failed" if want else "successful"
            raise LikraError(f"{option} {file}: {wrong} of its trajectories are {kind} (reward {not want})")
        out += found
    return out


def _sample(items: list[Trajectory], k: int | None, seed: str, option: str) -> list[Trajectory]:
    if k is not None and k > len(items):
        raise LikraError(f"{option} {k}: only {len(items)} trajectories are available (after the leakage guard)")
    items = list(items)
    random.Random(seed).shuffle(items)
    return items[: len(items) if k is None else k]


def select_trajectories(config: NATConfig) -> AgentData:
    """Read, drop trajectories of evaluation questions (by normalised question text), sample, and order."""
    task = get_agent_task(config.task)
    problems = []
    for split in task.files:  # the NAT release's rows carry only an id, which may point into any split
        problems += load_problems(task, split, config.data_dir)
    held = {normalize_text(p.question) for p in load_problems(task, config.eval_split, config.data_dir)}
    positives = _read(config.pos, problems, True, "--pos")
    negatives = _read(config.neg, problems, False, "--neg") if config.neg_num != 0 else []
    empty = sum(not _learnable(t) for t in positives + negatives)
    positives = [t for t in positives if _learnable(t)]
    negatives = [t for t in negatives if _learnable(t)]
    kept_pos = [t for t in positives if normalize_text(t.question) not in held]
    kept_neg = [t for t in negatives if normalize_text(t.question) not in held]
    dropped = len(positives) + len(negatives) - len(kept_pos) - len(kept_neg)
    chosen_pos = _sample(kept_pos, config.pos_num, f"{config.seed}:pos", "--pos-num")
    chosen_neg = _sample(kept_neg, config.neg_num, f"{config.seed}:neg", "--neg-num")
    order = chosen_pos + chosen_neg
    random.Random(f"{config.seed}:order").shuffle(order)
    return AgentData(order, len(chosen_pos), len(chosen_neg), dropped, empty)


def _learnable(trajectory: Trajectory) -> bool:
    return any(t.loss and t.role == "assistant" for t in trajectory.turns)


def run_nat_training(
    config: NATConfig,
    out: str | Path,
    *,
    dtype: str = "auto",
    resume: bool = False,
    progress: ProgressFactory = no_progress,
    log: Callable[[str], None] = quiet,
    on_load: OnLoad = quiet,
) -> TrainResult:
    """``likra nat train``: the trajectories selected (their errors before the model loads), the model loaded, the
    agent trained."""
    data = select_trajectories(config)
    log(f"{data.positives} positives + {data.negatives} negatives, template {config.template} "
        f"({data.dropped} dropped: their questions are in the evaluation split; {data.empty} empty)")  # fmt: skip
    loaded = load_model(config.model, dtype=dtype, device=config.device, training=True)
    on_load(loaded)
    with progress(len(data.trajectories) * config.epochs, "training") as advance:
        return train_agent(loaded, config, out, resume=resume, data=data, progress=advance)


def train_agent(
    loaded: LoadedModel,
    config: NATConfig,
    out: str | Path,
    *,
    resume: bool = False,
    data: AgentData | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Fine-tune ``loaded`` on the selected trajectories; checkpoints under ``out`` (``step-K/agent`` is a peft
    adapter; with ``full``, ``step-K/model`` is a whole model folder)."""
    data = data or select_trajectories(config)
    task = get_agent_task(config.task)
    examples = [
        [encode_trajectory(loaded.tokenizer, t, task.tool, task.checker, config.template, config.max_length)]
        for t in data.trajectories
    ]
    if not any(any(flags[1:]) for [(_, flags)] in examples):
        raise LikraError(f"--max-length {config.max_length}: cuts every trajectory before its first agent turn")
    manifest = Manifest(
        format=NAT_FORMAT,
        likra_version=__version__,
        tokenizer=getattr(loaded.tokenizer, "name_or_path", None),
        task=task.name,
        template=config.template,
        heads=[FULL if config.full else AGENT],
        config=asdict(config),
        data={
            "hash": data.hash(),
            "positives": data.positives,
            "negatives": data.negatives,
            "dropped_eval_overlap": data.dropped,
            "dropped_empty": data.empty,
            "tokens": sum(len(ids) for [(ids, _)] in examples),
            "trained_tokens": sum(sum(flags) for [(_, flags)] in examples),
        },
        seed=config.seed,
    )
    head = FULL if config.full else AGENT
    return fit(loaded, config, {head: examples}, Path(out), manifest, resume=resume, progress=progress)
