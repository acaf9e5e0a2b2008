"""Train Likra's two LoRA heads: a positive head on (question, correct answer) and a negative head on
(question, negative answer), on the same questions in the same order.

Read top to bottom: ``TrainConfig`` (``likra.configs``) → ``build_training_set`` (pool → the first N questions of a
seeded order → answer pairs, built exactly as evaluation builds its requests) → ``train`` (pairs → token examples
and a manifest) → ``likra.loop.fit``, the loop every method shares. The run folder's format (``save_checkpoint``,
resume state, loading) is ``likra.checkpoints``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from likra import parallel
from likra.checkpoints import (
    LIKRA_FORMAT,
    PREFIX_HEAD,
    Manifest,
    list_checkpoints,
    manifest_of,
    prepare_out,
)
from likra.configs import TrainConfig
from likra.data import get_task
from likra.data.items import MCItem
from likra.data.pools import Pool, training_pool
from likra.data.prompts import ANSWER_PREFIXES, answer_pairs
from likra.errors import LikraError
from likra.files import check_free
from likra.loop import Example, TrainResult, fit, save_points, schedule, token_loss
from likra.models import LoadedModel, load_model
from likra.negatives import NEEDS_BASE_SCORES, Negative, base_option_scores, make_negatives, unrelated_texts
from likra.progress import OnLoad, ProgressFactory, no_progress, quiet
from likra.scoring import encode_pairs
from likra.version import __version__

# --- data -------------------------------------------------------------------------------------------


@dataclass
class TrainingSet:
    """The questions in training order and, per question, its positive pair and its negative pairs."""

    questions: list[MCItem]
    positive: list[tuple[str, str]]
    negative: list[list[tuple[str, str]]]
    negatives: list[list[Negative]]
    pool: Pool

    def hash(self, questions: int | None = None) -> str:
        """Identity of the training data (prompts and answers, in order), recorded in every checkpoint; of its first
        ``questions`` only, to check that a run on fewer questions is a prefix of this one."""
        end = len(self.questions) if questions is None else questions
        payload = json.dumps([self.positive[:end], self.negative[:end]], ensure_ascii=False).encode()
        return "sha256:" + hashlib.sha256(payload).hexdigest()


def select_questions(config: TrainConfig, pool: Pool) -> list[MCItem]:
    """The first ``n`` questions of a seeded shuffle of the pool: a larger ``n`` extends a smaller one's list."""
    if config.n is not None and config.n > len(pool.items):
        raise LikraError(f"--n {config.n}: the training pool has only {len(pool.items)} questions")
    order = list(pool.items)
    random.Random(f"{config.seed}:questions").shuffle(order)
    return order[: config.n or len(order)]


def build_training_set(config: TrainConfig, loaded: LoadedModel | None = None, pool: Pool | None = None) -> TrainingSet:
    """Pool → questions → negatives → text pairs. ``loaded`` is needed only to mine hardest/easiest."""
    task = get_task(config.task)
    pool = pool or training_pool(task, config.eval_split, config.data_dir, config.train_file, config.hold_out)
    questions = select_questions(config, pool)
    base_scores = None
    if config.negatives in NEEDS_BASE_SCORES:
        if loaded is None:
            raise LikraError(f"--negatives {config.negatives} needs a model to rank the options")
        base_scores = base_option_scores(loaded, config.task, questions)
    foreign = unrelated_texts(task.name, config.data_dir) if config.negatives == "unrelated" else ()
    negatives = make_negatives(
        questions,
        config.negatives,
        k=config.negatives_per_question,
        contamination=config.contamination,
        seed=config.seed,
        base_scores=base_scores,
        others=pool.items,
        foreign_texts=foreign,
    )
    positive = [answer_pairs(task, q, [q.choices[q.label]])[0] for q in questions]
    negative = [
        answer_pairs(task, q, [n.text for n in negs]) if negs else []
        for q, negs in zip(questions, negatives, strict=True)
    ]
    return TrainingSet(questions, positive, negative, negatives, pool)


# --- examples ---------------------------------------------------------------------------------------


def answer_example(context: list[int], answer: list[int]) -> Example:
    """A (context, answer) pair as an example trained on its answer tokens only (question masked, no EOS)."""
    return context + answer, [False] * len(context) + [True] * len(answer)


def answer_loss(model: Any, examples: Sequence[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, int]:
    """``token_loss`` of (context, answer) pairs."""
    return token_loss(model, [answer_example(c, a) for c, a in examples])


def encode_examples(
    tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int
) -> list[tuple[list[int], list[int]]]:
    """Tokenise as the scoring engine does (the answer tokens are the ones evaluation scores); longer examples
    lose the start of their context."""
    encoded = encode_pairs(tokenizer, pairs)
    out = []
    for context, answer in encoded:
        answer = answer[-max_length:]
        keep = max(max_length - len(answer), 1)
        out.append((context[-keep:], answer))
    return out


# --- a run ---------------------------------------------------------------------------------------


def train(
    loaded: LoadedModel,
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    data: TrainingSet | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train the heads of ``config`` on ``loaded`` and write checkpoints under ``out`` (see the module doc)."""
    out = Path(out)
    if parallel.is_main():  # (the other processes of one launch share the main one's claim)
        check_free(out)  # refuse a folder in use, or a wrong one, before the (possibly slow) data building
    prepare_out(out, resume)
    data = data or build_training_set(config, loaded)
    examples = head_examples(loaded.tokenizer, config, data)
    manifest = training_manifest(config, data, loaded.tokenizer, list(config.head_names))
    heads = {h: examples[h] for h in config.head_names}
    extends = resume and _extends(out, config, data)
    return fit(loaded, config, heads, out, manifest, resume=resume, progress=progress, extends=extends)


def run_training(
    config: TrainConfig,
    out: str | Path,
    *,
    dtype: str = "auto",
    resume: bool = False,
    progress: ProgressFactory = no_progress,
    log: Callable[[str], None] = quiet,
    on_load: OnLoad = quiet,
    method: Callable[..., TrainResult] = train,
) -> TrainResult:
    """``likra train`` from start to end (``likra baseline`` with ``method=likra.baselines.train_baseline``): the
    pool read (its errors before the model loads), the model loaded, the training data built, the run trained."""
    pool = training_pool(config.task, config.eval_split, config.data_dir, config.train_file, config.hold_out)
    log(f"training pool: {len(pool.items)} questions from {', '.join(pool.sources)} "
        f"({len(pool.dropped)} dropped: they occur in {', '.join(pool.held_out)})")  # fmt: skip
    loaded = load_model(config.model, dtype=dtype, device=config.device, training=True)
    on_load(loaded)
    data = build_training_set(config, loaded, pool)
    total = len(data.questions) * config.epochs
    what = {"likra": f"heads: {config.heads}", "prefix": "prefix Likra (one adapter)"}.get(
        config.method, f"{config.method.upper()} (TRL)"
    )
    log(f"{len(data.questions)} questions x {config.epochs} epoch(s), {config.negatives} negatives, {what}; "
        f"checkpoints at {', '.join(map(str, save_points(total, config.save_at)))} examples")  # fmt: skip
    with progress(total, "training") as advance:
        return method(loaded, config, out, resume=resume, data=data, progress=advance)


def head_examples(tokenizer: Any, config: TrainConfig, data: TrainingSet) -> dict[str, list[list[Example]]]:
    """Per question, the positive head's one example and the negative head's (possibly several); for prefix Likra,
    the one adapter's: the positive after its kind's prefix, then the negatives after theirs (the prefix is
    context, so no loss is taken on it)."""

    def encoded(pairs: Sequence[tuple[str, str]], kind: str | None = None) -> list[Example]:
        if kind is not None:
            pairs = [(ANSWER_PREFIXES[kind] + context, answer) for context, answer in pairs]
        return [answer_example(*e) for e in encode_examples(tokenizer, pairs, config.max_length)]

    if config.method == "prefix":
        pairs = zip(data.positive, data.negative, strict=True)
        return {PREFIX_HEAD: [encoded([p], "positive") + encoded(n, "negative") for p, n in pairs]}
    return {"positive": [encoded([p]) for p in data.positive], "negative": [encoded(n) for n in data.negative]}


def _extends(out: Path, config: TrainConfig, data: TrainingSet) -> bool:
    """Whether ``--resume`` continues a run on fewer questions (a curve to a larger ``--max-n``): allowed when that
    run's questions and negatives are the first of this one's and its newest checkpoint falls between two batches
    of this run, so the continuation computes what a run made to the larger ``--n`` at once computes."""
    done = list_checkpoints(out)
    if not done:
        return False
    examples, path = done[-1]
    previous = manifest_of(path)
    before, now = previous.questions or 0, len(data.questions)
    if before == now:
        return False
    if before > now:
        raise LikraError(
            f"--n {now}: {out} holds a run on {before} questions; give --n {before} or more, or another --out"
        )
    if config.epochs != 1:
        raise LikraError(f"--epochs {config.epochs}: a run is extended to more questions only with --epochs 1")
    if previous.data_hash != data.hash(before):
        raise LikraError(f"--resume: the first {before} questions or their negatives differ from the run in {out}")
    batches = schedule(now, save_points(now, config.save_at), config.batch_size)
    if examples not in {b.stop for b in batches}:
        raise LikraError(
            f"--n {now}: {path.name} is not between two batches of a run to {now} questions "
            f"(--batch-size {config.batch_size}), so it cannot be continued exactly; pick another --out"
        )
    return True


def training_manifest(config: TrainConfig, data: TrainingSet, tokenizer: Any, heads: list[str]) -> Manifest:
    """What every checkpoint of a run records about it (the loop adds the base model and the counts)."""
    return Manifest(
        format=LIKRA_FORMAT,
        likra_version=__version__,
        tokenizer=getattr(tokenizer, "name_or_path", None),
        task=get_task(config.task).name,
        eval_split=data.pool.eval_split,
        heads=heads,
        questions=len(data.questions),
        config=asdict(config),
        data={
            "hash": data.hash(),
            "pool_size": len(data.pool.items),
            "dropped": len(data.pool.dropped),
            "sources": data.pool.sources,
            "held_out": data.pool.held_out,
            "question_ids": [q.id for q in data.questions],
        },
        seed=config.seed,
    )


