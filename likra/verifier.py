"""Likra as a verifier: any answer to any question scored on its own, no other options seen.

A practitioner's rows (``{"id", "question", "answer"}`` or ``{"id", "question", "candidates": [...]}``) become
requests in the checkpoint's own prompt format (the one its heads were trained on), are scored by the base model
and both heads in one pass (``likra.checkpoints.Checkpoint``), and come back one dict per answer: each head's
log-likelihood, summed and per character, the chosen mode's score, the candidates' rank, and ``p_correct`` when
the checkpoint holds a calibration (``likra.calibration``). ``score_file`` streams a JSONL file in chunks, so
memory stays bounded whatever its length.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from likra.calibration import calibrate, read_calibration
from likra.checkpoints import Checkpoint
from likra.configs import CalibrationConfig, VerifierConfig
from likra.data import get_task
from likra.data.items import MCItem, read_jsonl
from likra.data.prompts import build_requests
from likra.errors import LikraError
from likra.files import check_out_folder, check_outputs, writing
from likra.item_scores import score_requests
from likra.metrics import NORMS, ItemScores
from likra.models import describe
from likra.progress import OnLoad, ProgressFactory, no_progress, quiet
from likra.verifier_metrics import option_scores

HEAD_NAMES = ("base", "positive", "negative")


@dataclass(frozen=True)
class Row:
    """One row of a user's file: a question and its answers (one, or the candidates to rank)."""

    id: str
    question: str
    answers: list[str]
    candidates: bool  # whether the answers are candidates (each output gets its index and rank)


def parse_row(row: Any, where: str) -> Row:
    """A user's row, checked: ``where`` (``FILE:LINE`` or ``request``) starts every error."""
    if not isinstance(row, dict):
        raise LikraError(f"{where}: expected a JSON object, got {type(row).__name__}")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise LikraError(f"{where}: 'question' should be a non-empty string")
    if ("answer" in row) == ("candidates" in row):
        raise LikraError(f"{where}: give 'answer' (one) or 'candidates' (a list), not both or neither")
    answers = row["candidates"] if "candidates" in row else [row["answer"]]
    if not isinstance(answers, list) or not answers:
        raise LikraError(f"{where}: 'candidates' should be a non-empty list of strings")
    for i, answer in enumerate(answers):
        if not isinstance(answer, str) or not answer.strip():
            name = f"candidate {i}" if "candidates" in row else "'answer'"
            raise LikraError(f"{where}: {name} should be a non-empty string")
    row_id = row.get("id", where)
    if not isinstance(row_id, str | int) or isinstance(row_id, bool):
        raise LikraError(f"{where}: 'id' should be a string or a number")
    return Row(str(row_id), question, list(answers), "candidates" in row)


class Verifier:
    """A checkpoint's heads, loaded once, scoring answers on their own (``Verifier(dir).score(rows)``)."""

    def __init__(self, config: VerifierConfig | str | Path, *, model: str | None = None, dtype: str = "auto"):
        self.config = config if isinstance(config, VerifierConfig) else VerifierConfig(checkpoint=str(config))
        budget = self.config.batch_tokens
        self.checkpoint = Checkpoint.open(
            self.config.checkpoint,
            model=model,
            dtype=dtype,
            device=self.config.device,
            mode=self.config.mode,
            batch_tokens=None if budget == "auto" else int(budget),
        )
        self.step, self.manifest, self.loaded = self.checkpoint.path, self.checkpoint.manifest, self.checkpoint.loaded
        self.task = get_task(self.manifest.task or "")  # the prompt format the heads were trained on
        self.calibration = read_calibration(self.step, self.config.mode, self.config.neg_weight, self.config.norm)

    def info(self) -> dict[str, Any]:
        """What scores: the checkpoint, its base model and task, the mode and weight, the calibration."""
        return {
            "checkpoint": str(self.step),
            "examples_seen": self.manifest.examples_seen,
            "heads": self.manifest.heads,
            "task": self.task.name,
            "base_model": (self.manifest.base_model or {}).get("name"),
            "mode": self.config.mode,
            "neg_weight": self.config.neg_weight,
            "norm": self.config.norm,
            "calibration": self.calibration.describe() if self.calibration else None,
            "hardware": describe(self.loaded),  # where it scores: device, its name, dtype
        }

    @property
    def special_tokens(self) -> list[str]:
        """The tokenizer's special tokens (a policy's decoded text can end with them: the server strips them)."""
        return list(self.loaded.tokenizer.all_special_tokens)

    def score(self, rows: Iterable[Row | dict[str, Any]], progress: Callable[[int], None] | None = None) -> list[dict]:
        """One dict per answer, in row and candidate order (plain dicts are checked as ``parse_row`` does)."""
        parsed = [r if isinstance(r, Row) else parse_row(r, f"row {i}") for i, r in enumerate(rows, 1)]
        if not parsed:
            return []
        items = [MCItem(r.id, r.question, r.answers, 0) for r in parsed]  # the label is unknown and unused
        requests = build_requests(self.task, items)
        scores = score_requests(self.checkpoint.loglikelihoods, requests, progress, calibrate=False)
        return [answer for row, item in zip(parsed, scores, strict=True) for answer in self._answers(row, item)]

    def _answers(self, row: Row, item: ItemScores) -> list[dict[str, Any]]:
        heads = {"base": item.loglikelihoods, **item.heads}
        combined = option_scores(item, self.config.mode, NORMS[self.config.norm], self.config.neg_weight)
        order = sorted(range(len(row.answers)), key=lambda i: -combined[i])
        out = []
        for i, answer in enumerate(row.answers):
            n = max(item.n_chars[i], 1)
            entry: dict[str, Any] = {"id": row.id}
            if row.candidates:
                entry["index"] = i
            entry |= {
                "answer": answer,
                "loglikelihood": {h: heads[h][i] for h in HEAD_NAMES if h in heads},
                "per_char": {h: heads[h][i] / n for h in HEAD_NAMES if h in heads},
                "n_chars": item.n_chars[i],
                "n_tokens": item.n_tokens[i],
                "score": combined[i],
            }
            if row.candidates:
                entry["rank"] = order.index(i) + 1
            if self.calibration is not None:
                entry["p_correct"] = self.calibration.probability(combined[i])
            out.append(entry)
        return out

    def close(self) -> None:
        """Take the adapters off the base model (``loaded.model`` is the plain model again)."""
        self.checkpoint.close()


def check_rows(path: str | Path) -> int:
    """Read and check every row (a bad one names file and line; ids must be unique, as ``eval`` asks: outputs
    join on them) keeping only their ids: the first pass, before a model loads; returns the number of rows, the
    progress bar's total."""
    first: dict[str, int] = {}  # id → its line
    for number, row in read_jsonl(Path(path)):
        found = parse_row(row, f"{path}:{number}")
        if first.setdefault(found.id, number) != number:
            raise LikraError(
                f"{path}:{number}: id {found.id!r} again (first at line {first[found.id]}); ids must be unique"
            )
    if not first:
        raise LikraError(f"{path}: no rows")
    return len(first)


def read_rows(path: str | Path) -> Iterator[Row]:
    """A user's JSONL rows, checked one by one (a bad row names file and line)."""
    path = Path(path)
    for number, row in read_jsonl(path):
        yield parse_row(row, f"{path}:{number}")


def score_file(
    verifier: Verifier, source: str | Path, out: str | Path, progress: Callable[[int], None] | None = None
) -> int:
    """Score every row of ``source`` into ``out`` (JSONL, one line per answer), a chunk at a time; the output
    appears whole (atomically) at the end, or not at all. Returns the number of answers written."""
    check_outputs({"--out": out}, {"--input": source})
    rows, written = read_rows(source), 0
    with writing(out) as tmp, tmp.open("w", encoding="utf-8") as handle:
        while chunk := list(itertools.islice(rows, verifier.config.chunk)):
            share = None if progress is None else _per_row(progress, chunk)
            for answer in verifier.score(chunk, share):
                handle.write(json.dumps(answer, ensure_ascii=False) + "\n")
                written += 1
    return written


def _per_row(progress: Callable[[int], None], chunk: Sequence[Row]) -> Callable[[int], None]:
    """The scorer reports requests (answers); the bar counts rows: scale one to the other."""
    answers = sum(len(r.answers) for r in chunk)
    return lambda n: progress(n * len(chunk) / answers)


def run_score(
    config: VerifierConfig,
    source: str,
    out: str,
    *,
    model: str | None = None,
    dtype: str = "auto",
    progress: ProgressFactory = no_progress,
    on_load: OnLoad = quiet,
) -> tuple[Verifier, int]:
    """``likra score``: every row of ``source`` checked before the model loads, then scored into ``out`` (JSONL, one
    line per answer); the verifier that scored and the answers written."""
    check_outputs({"--out": out}, {"--input": source})
    total = check_rows(source)
    verifier = Verifier(config, model=model, dtype=dtype)
    on_load(verifier.loaded)
    with progress(total, f"scoring {total} rows") as advance:
        return verifier, score_file(verifier, source, out, advance)


def run_calibration(
    config: VerifierConfig,
    calibration: CalibrationConfig,
    out: str | None = None,
    *,
    model: str | None = None,
    dtype: str = "auto",
    progress: ProgressFactory = no_progress,
    on_load: OnLoad = quiet,
) -> tuple[Verifier, dict[str, Any]]:
    """``likra calibrate``: the checkpoint opened as a verifier and its score's map to P(correct) fitted and stored
    beside it (``likra.calibration.calibrate``); the verifier and the report. ``out`` is checked before the model
    loads."""
    if out is not None:
        check_out_folder("--out", out)
    verifier = Verifier(config, model=model, dtype=dtype)
    on_load(verifier.loaded)
    return verifier, calibrate(verifier, calibration, out, progress=progress)
