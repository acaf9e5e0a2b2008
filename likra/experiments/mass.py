"""Where the probability mass goes (the paper's Figure 6): for test questions paired with four kinds of
answer, the mean change of per-character log-likelihood from the base model under each head, per checkpoint.

Answer kinds per question: its correct answer, the most likely incorrect option (by the base model, per
character), an irrelevant answer (an option of another test question) and an unrelated text (another
dataset's answer). The paper's finding to test: the negative head raises plausible wrong answers far more
than the positive head does, so ``L+ - L-`` pushes them down.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from likra import plots
from likra.checkpoints import check_base_model, list_checkpoints, load_checkpoint_base, read_manifest
from likra.data import build_requests, get_task
from likra.data.items import MCItem
from likra.evaluation import EvalConfig, evaluate, prepare, read_items, write_items
from likra.files import claim, write_csv, write_json, write_text
from likra.metrics import ItemScores
from likra.models import LoadedModel, describe
from likra.negatives import make_negatives, unrelated_texts
from likra.progress import OnLoad, quiet

ANSWER_KINDS = ("correct", "likely_incorrect", "irrelevant", "unrelated")
MASS_FIELDS = ["examples", "head", "answer", "mean_delta_per_char", "n"]


def mass_items(
    task: str,
    data_dir: str | None,
    base_option_scores: dict[str, list[float]],
    questions: Sequence[MCItem],
    seed: int = 1234,
) -> list[MCItem]:
    """Each question with its four answers as choices, in ``ANSWER_KINDS`` order (label 0: the correct one)."""
    irrelevant = make_negatives(questions, "irrelevant", seed=seed)
    unrelated = make_negatives(questions, "unrelated", seed=seed, foreign_texts=unrelated_texts(task, data_dir))
    out = []
    for q, irr, unr in zip(questions, irrelevant, unrelated, strict=True):
        scores = base_option_scores[q.id]
        wrong = max((i for i in range(len(q.choices)) if i != q.label), key=lambda i: (scores[i], -i))
        texts = [q.choices[q.label], q.choices[wrong], irr[0].text, unr[0].text]
        out.append(replace(q, choices=texts, label=0))
    return out


MASS_SAMPLE = 300  # questions: enough for a mean change per answer kind, a few minutes on a CPU


def mass_experiment(
    checkpoint: str | Path,
    out: str | Path,
    config: EvalConfig,
    *,
    dtype: str = "auto",
    log: Callable[[str], None] = print,
    on_load: OnLoad = quiet,
) -> dict[str, Any]:
    """``likra mass``: the checkpoint's base model loaded, then ``run_mass`` on ``config``'s questions (a seeded
    sample of ``MASS_SAMPLE`` unless it gives ``limit`` or ``sample``)."""
    sample = MASS_SAMPLE if config.sample is None and config.limit is None else config.sample
    _, manifest = read_manifest(checkpoint)
    loaded = load_checkpoint_base(checkpoint, manifest, dtype=dtype, device=config.device)
    on_load(loaded)
    return run_mass(loaded, checkpoint, out, split=config.split, limit=config.limit, sample=sample,
                    data_dir=config.data_dir, batch_tokens=config.batch_tokens, log=log)  # fmt: skip


def run_mass(
    loaded: LoadedModel,
    run: str | Path,
    out: str | Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    sample: int | None = MASS_SAMPLE,
    data_dir: str | None = None,
    batch_tokens: str = "auto",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score the four answer kinds under the base model once and under the heads of every checkpoint in
    ``run``; every piece of work is a file under ``out`` and is not redone. Writes ``mass.csv``, ``mass.json``
    and ``mass.png``."""
    run, out = Path(run), Path(out)
    newest, manifest = read_manifest(run)
    checkpoints = list_checkpoints(run) or [(manifest.examples_seen, run)]
    check_base_model(loaded, newest, manifest)
    config = EvalConfig(task=manifest.task, split=split, limit=limit, sample=sample, data_dir=data_dir, calibrate=False,
                        batch_tokens=batch_tokens)  # fmt: skip
    with claim(out):  # one writer: its pieces are files that a second one would redo
        return _run_mass(loaded, run, out, config, checkpoints, log)


def _run_mass(
    loaded: LoadedModel,
    run: Path,
    out: Path,
    config: EvalConfig,
    checkpoints: list[tuple[int, Path]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    task, data_dir = config.task, config.data_dir
    questions_path = out / "questions.jsonl"
    if not questions_path.is_file():
        log("ranking every option with the base model to find the most likely incorrect one")
        options = prepare(config)
        ranked = {
            s.id: [ll / max(n, 1) for ll, n in zip(s.loglikelihoods, s.n_chars, strict=True)]
            for s in evaluate(loaded, config, options).items
        }
        rows = [asdict(item) for item in mass_items(task, data_dir, ranked, [r.item for r in options])]
        write_text(questions_path, "".join(json.dumps(row) + "\n" for row in rows))
    items = [MCItem(**row) for row in (json.loads(line) for line in questions_path.read_text().splitlines())]
    requests = build_requests(get_task(task), items)  # four answers per question, prompted as evaluation does
    base_path = out / "base.items.jsonl"
    if not base_path.is_file():
        log(f"scoring {len(items)} questions x 4 answers with the base model")
        write_items(base_path, evaluate(loaded, config, requests).items)
    base = read_items(base_path)
    rows: list[dict[str, Any]] = []
    for examples, path in checkpoints:
        target = out / f"step-{examples}.items.jsonl"
        if not target.is_file():
            log(f"scoring step-{examples}")
            write_items(target, evaluate(loaded, replace(config, checkpoint=str(path)), requests, base=base).items)
        rows += mass_rows(examples, read_items(target))
    write_csv(out / "mass.csv", rows, MASS_FIELDS)
    summary = {"run": str(run), "task": task, "n_questions": len(items), "answers": ANSWER_KINDS,
               "hardware": describe(loaded), "rows": rows}  # fmt: skip
    write_json(out / "mass.json", summary)
    plot_mass(rows, out / "mass.png", f"{task} · {len(items)} questions")
    return summary


def mass_rows(examples: int, scores: Sequence[ItemScores]) -> list[dict[str, Any]]:
    """Mean per-character change from the base model, per head and answer kind."""
    rows = []
    for head in scores[0].heads:
        for k, kind in enumerate(ANSWER_KINDS):
            deltas = [(s.heads[head][k] - s.loglikelihoods[k]) / max(s.n_chars[k], 1) for s in scores]
            rows.append({"examples": examples, "head": head, "answer": kind,
                         "mean_delta_per_char": sum(deltas) / len(deltas), "n": len(deltas)})  # fmt: skip
    return rows


# --- its figure --------------------------------------------------------------------------------------


ANSWER_COLOURS = {"correct": "tab:green", "likely_incorrect": "tab:red", "irrelevant": "tab:brown", "unrelated": "gray"}


def plot_mass(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Left: mean change of per-character log-likelihood from the base model, per answer kind (colour) and
    head (solid: positive, dashed: negative), across checkpoints. Right (when both heads are there): the
    positive head's change minus the negative head's, i.e. how Likra's score ``L+ - L-`` moves each kind."""
    delta = {(r["examples"], r["head"], r["answer"]): r["mean_delta_per_char"] for r in rows}
    heads = list(dict.fromkeys(r["head"] for r in rows))
    both = {"positive", "negative"} <= set(heads)
    fig, axes = plots.axes(2 if both else 1)
    left = axes[0] if both else axes
    for head, line in (("positive", "-"), ("negative", "--")):
        for answer, colour in ANSWER_COLOURS.items():
            points = sorted((x, y) for (x, h, a), y in delta.items() if h == head and a == answer)
            if points:
                left.plot([x for x, _ in points], [y for _, y in points], color=colour, linestyle=line, marker="o",
                          markersize=3, label=f"{head} head · {answer.replace('_', ' ')}")  # fmt: skip
    left.axhline(0, color="black", linewidth=0.8)
    plots.label(left, "each head against the base model", plots.EXAMPLES_AXIS, "mean Δ log-likelihood per character",
                True)  # fmt: skip
    if both:
        right = axes[1]
        for answer, colour in ANSWER_COLOURS.items():
            xs = sorted(x for (x, h, a) in delta if h == "positive" and a == answer and (x, "negative", a) in delta)
            ys = [delta[(x, "positive", answer)] - delta[(x, "negative", answer)] for x in xs]
            right.plot(xs, ys, color=colour, marker="o", markersize=3, label=answer.replace("_", " "))
        right.axhline(0, color="black", linewidth=0.8)
        plots.label(right, "positive minus negative: the move of L+ \u2212 L\u2212", plots.EXAMPLES_AXIS,
               "mean Δ+ \u2212 Δ\u2212 per character", True)  # fmt: skip
    fig.suptitle(title)
    return plots.save(fig, path)
