"""A checkpoint's model card: ``README.md`` with Hugging Face's metadata header, so that uploading a step-K/ folder
gives a proper model page (``huggingface_hub`` reads the header; peft's own cards stay in each head's folder).

It says what the checkpoint is (base model, task and data, heads, training options, examples seen, the loss),
how to load it with plain ``peft`` and with likra, and the evaluations run on it: ``likra eval --checkpoint``
records its numbers in ``evaluations.json`` beside the card and writes the card again.
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Any

from likra.artefacts import Evaluations, read_stored
from likra.errors import LikraError
from likra.files import write_json, write_text

# ``manifest`` below is a ``likra.checkpoints.Manifest``; not imported, even for typing: the checkpoint module
# writes cards, so it imports this one and not the other way
Manifest = Any

CARD = "README.md"
EVALUATIONS = "evaluations.json"
TAGS = ["likra", "peft", "lora", "negative-examples", "verifier"]


def hub_id(name: str) -> str | None:
    """The Hub repository a base model comes from, for the card's ``base_model``: an embedded model's source, a
    ``org/name`` id; None for a local folder (the Hub would reject its path)."""
    from likra.models import EMBEDDED

    if name in EMBEDDED:
        return EMBEDDED[name].hub_id
    return name if name.count("/") == 1 and not Path(name).exists() else None


def header(manifest: Manifest) -> str:
    """The YAML metadata block (written by hand: a fixed, flat shape; JSON strings are valid YAML scalars)."""
    base = hub_id((manifest.base_model or {}).get("name", ""))
    lines = ["---"]
    if base:
        lines.append(f"base_model: {json.dumps(base)}")
    lines.append("library_name: " + ("transformers" if manifest.full else "peft"))
    lines += ["tags:", *(f"- {t}" for t in TAGS)]
    dataset = _dataset(manifest.task)
    if dataset:
        lines += ["datasets:", f"- {json.dumps(dataset)}"]
    return "\n".join([*lines, "---"])


def _dataset(task: str | None) -> str | None:
    from likra.data.tasks import TASKS

    spec = TASKS.get(task or "")
    return spec.hub[0] if spec is not None and spec.hub[0] else None


def card(manifest: Manifest, name: str, evaluations: list[dict[str, Any]]) -> str:
    """The whole card of the checkpoint ``name`` (``run/step-K``)."""
    base = manifest.base_model or {}
    heads = ", ".join(f"`{h}/`" for h in manifest.heads)
    options = "\n".join(f"| `{k}` | `{json.dumps(v)}` |" for k, v in sorted(manifest.config.items()))
    loss = ", ".join(f"{h} {v:.4f}" for h, v in (manifest.loss or {}).items() if v is not None) or "not recorded"
    parts = [
        header(manifest),
        f"# {name}: a likra checkpoint",
        "",
        f"Trained with [likra](https://pypi.org/project/likra/) {manifest.likra_version or ''} on "
        f"`{manifest.task}` ({manifest.examples_seen} examples seen, {manifest.steps} steps; data hash "
        f"`{manifest.data_hash}`), over the base model `{base.get('name')}` (weights `{base.get('hash')}`).",
        "",
        f"Heads: {heads}. Mean per-token loss since the previous checkpoint: {loss}.",
        "",
        "## Use",
        "",
        "```python",
        *_use(manifest, base),
        "```",
        "",
        "## Training options",
        "",
        "| option | value |",
        "|---|---|",
        options,
        "",
        "## Evaluations",
        "",
        *_evaluation_table(evaluations),
    ]
    return "\n".join(parts) + "\n"


def _use(manifest: Manifest, base: dict[str, Any]) -> list[str]:
    name = hub_id(base.get("name", "")) or base.get("name")
    head = manifest.heads[0]
    if manifest.full:
        return ["from transformers import AutoModelForCausalLM",
                f'model = AutoModelForCausalLM.from_pretrained("{head}")']  # fmt: skip
    return [
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM",
        f'base = AutoModelForCausalLM.from_pretrained("{name}")',
        f'model = PeftModel.from_pretrained(base, "{head}")  # one head; load_adapter() adds the other',
        "",
        "# or score answers with both heads (L+ - w·L-): likra score --checkpoint . --input rows.jsonl --out out.jsonl",
    ]


def _evaluation_table(evaluations: list[dict[str, Any]]) -> list[str]:
    if not evaluations:
        return ["None yet: `likra eval --checkpoint` records its numbers here."]
    rows = ["| task | split | questions | mode | w | acc | acc_norm | evaluated |", "|---|---|---|---|---|---|---|---|"]
    for e in evaluations:
        metrics = e.get("metrics", {})
        cells = [e.get("task"), e.get("split"), e.get("n"), e.get("mode"), e.get("neg_weight"),
                 _number(metrics.get("acc")), _number(metrics.get("acc_norm")), e.get("evaluated")]  # fmt: skip
        rows.append("| " + " | ".join("" if c is None else str(c) for c in cells) + " |")
    return rows


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else ""


def _evaluations(step: Path) -> list[dict[str, Any]]:
    path = step / EVALUATIONS
    return read_stored(path, Evaluations, "a likra evaluations record")["evaluations"] if path.is_file() else []


def record_evaluation(step: Path, manifest: Manifest, results: dict[str, Any]) -> None:
    """Add an evaluation's numbers (one per task, split, mode, weight and sample: a re-run replaces its own) and
    write the card again. A checkpoint that cannot be written to (a read-only cache) keeps its card; said once."""
    keys = ("task", "split", "mode", "neg_weight", "norm", "shots", "limit", "sample")
    entry = {k: results.get(k) for k in (*keys, "n", "metrics")}
    entry["evaluated"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    try:
        evaluations = [*(e for e in _evaluations(step) if any(e.get(k) != entry.get(k) for k in keys)), entry]
        write_json(step / EVALUATIONS, {"evaluations": evaluations})
        write_text(step / CARD, card(manifest, f"{step.parent.name}/{step.name}", evaluations))
    except LikraError as err:
        logging.getLogger("likra").warning("likra: the model card was not updated (%s)", err)
