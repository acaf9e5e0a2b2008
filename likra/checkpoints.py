"""The run folder: what a checkpoint is on disk, and how it is written, found, resumed from and loaded.

    run/
      step-K/                   one checkpoint per save point, K = examples (questions) seen
        likra.json              the manifest: format, base model (name, path, weights hash), heads, config, data
        positive/ negative/     plain peft adapter folders (or prefix/, or model/ for a full fine-tuning)
        optimizer.pt            the optimiser state, in the newest checkpoint only (for --resume)
      train_log.jsonl           one line per optimiser step
      .likra.lock               held while a process writes the folder (likra.files.claim)

Training (``likra.loop`` for Likra, NAT and the TRL baselines) writes it; evaluation, the verifier, the lm-eval
plugin, NAT's runs, the experiments and the CLI read it, through two things only: ``Manifest``, the typed
``likra.json`` (read and written here and nowhere else), and ``Checkpoint``, a run opened for scoring (its base
model found and checked, its heads loaded, two-head or prefix Likra decided inside, log-likelihoods by head).
This module imports neither side, so they depend on it and not on each other; torch is imported where a function
needs it (the CLI imports this module before any command runs).
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from likra.artefacts import validated
from likra.errors import LikraError
from likra.files import iter_lines, read_json, write_text, writing
from likra.model_card import CARD, card
from likra.models import LoadedModel, load_model, weights_hash

HEADS = ("positive", "negative")
PREFIX_HEAD = "prefix"  # prefix Likra's one adapter, trained on both kinds of answer after a line naming the kind
FULL = "model"  # the one "head" of a full fine-tuning run: all weights train, saved as a plain model folder
MANIFEST = "likra.json"
OPTIMIZER_STATE = "optimizer.pt"
TRAIN_LOG = "train_log.jsonl"
LIKRA_FORMAT = "likra-checkpoint"
NAT_FORMAT = "likra-nat-checkpoint"
FORMAT_VERSION = 1
# Options that may differ between a run and its --resume without changing what is computed.
# (a run trained on a GPU resumes on the CPU; gradient checkpointing recomputes the same activations; the log's
# trackers only watch)
RESUME_FREE = ("data_dir", "device", "gradient_checkpointing", "report_to")
# Options added after runs were made, with the value those runs had (so they still resume and extend).
ADDED_OPTIONS = {"method": "likra", "grad_accum": 1}


@dataclass
class Manifest:
    """A checkpoint's ``likra.json``: what trained it, on what, and how far. Fields are written in this order, and
    those left None are left out (a Likra run has no ``template``, NAT's no ``questions``), except ``tokenizer``."""

    format: str  # LIKRA_FORMAT (Likra's heads, prefix Likra, the TRL baselines) or NAT_FORMAT (an agent)
    format_version: int = FORMAT_VERSION
    likra_version: str | None = None
    tokenizer: str | None = None
    task: str | None = None
    eval_split: str | None = None
    template: str | None = None  # NAT's prompt template
    heads: list[str] = field(default_factory=list)  # adapter folders (or FULL)
    questions: int | None = None  # Likra: the run's questions (a --resume may extend them)
    config: dict[str, Any] = field(default_factory=dict)  # the training config, as ``asdict`` gives it
    data: dict[str, Any] | None = None  # its hash, sources, question ids, ...
    seed: int | None = None
    method: str | None = None  # dpo or kto (Likra's and prefix Likra's method is in ``config``)
    base_model: dict[str, Any] | None = None  # name, path, hash, dtype (``base_model_entry``)
    hardware: dict[str, Any] | None = None  # device, its name, dtype (``likra.models.describe``)
    examples_seen: int | None = None
    steps: int | None = None
    loss: dict[str, float | None] | None = None  # mean per-token loss since the previous checkpoint, per head
    extra: dict[str, Any] = field(default_factory=dict)  # keys a later version added, kept as they were

    @classmethod
    def from_json(cls, row: dict[str, Any], where: Path) -> Manifest:
        """A manifest from its JSON object; a wrong shape is one line naming the file and the field."""
        known = {f.name for f in fields(cls)} - {"extra"}
        checks = {"heads": list, "config": dict, "base_model": dict}
        for name, kind in checks.items():
            if not isinstance(row.get(name), kind):
                what = f"'{name}' should be a JSON {kind.__name__}"
                raise LikraError(f"{where}: not a likra checkpoint manifest ({what})")
        if not all(isinstance(row["base_model"].get(k), str) for k in ("name", "hash")):
            raise LikraError(f"{where}: not a likra checkpoint manifest ('base_model' needs a name and a hash)")
        values = {k: v for k, v in row.items() if k in known}
        extra = {k: v for k, v in row.items() if k not in known}
        return validated({"format": LIKRA_FORMAT, **values, "extra": extra}, cls, str(where))

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {k: v for k, v in out.items() if v is not None or k == "tokenizer"} | self.extra

    @property
    def prefixed(self) -> bool:
        """Whether it is prefix Likra's (one adapter scored after each kind's line)."""
        return self.config.get("method") == "prefix"

    @property
    def scored_heads(self) -> list[str]:
        """The heads its scores have (prefix Likra's one adapter gives both)."""
        return list(HEADS) if self.prefixed else list(self.heads)

    @property
    def full(self) -> bool:
        """Whether it is a fully fine-tuned model (one ``model/`` folder) rather than LoRA heads."""
        return self.heads == [FULL]

    @property
    def data_hash(self) -> str | None:
        return (self.data or {}).get("hash")

    def trained_ids(self) -> set[str]:
        """The ids of the questions its heads were trained on (up to this checkpoint)."""
        return set((self.data or {}).get("question_ids", [])[: self.examples_seen])

    def describe(self, path: Path) -> dict[str, Any]:
        """What a result records about the checkpoint that made it."""
        assert self.base_model is not None
        return {"path": str(path), "examples_seen": self.examples_seen, "heads": self.heads,
                "negatives": self.config.get("negatives"), "base_model_hash": self.base_model["hash"]}  # fmt: skip


@contextmanager
def quiet_peft() -> Iterator[None]:
    """peft 0.21 and TRL 1.16 call transformers 5's deprecated gradient-checkpointing names; the warnings are theirs,
    not the user's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
        yield


def step_dir(out: Path, examples: int) -> Path:
    return out / f"step-{examples}"


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (those with a manifest), by examples seen."""
    found = []
    for path in out.glob("step-*"):
        suffix = path.name.removeprefix("step-")
        if suffix.isdigit() and (path / MANIFEST).is_file():
            found.append((int(suffix), path))
    return sorted(found)


def save_checkpoint(
    out: Path,
    model: Any,
    heads: Sequence[str],
    optimizers: dict[str, Any],
    manifest: Manifest,
    tokenizer: Any = None,
    default_adapter: bool = False,
) -> Path:
    """Write to a temporary directory, then rename: a kill mid-save leaves the previous checkpoint whole.
    LoRA heads are plain peft folders ``<head>/``; a full fine-tuning run is a plain model folder ``model/`` (with
    the tokenizer, so ``--model step-K/model`` loads it). The optimiser state (needed only to resume) is kept in
    the newest checkpoint alone. ``default_adapter``: the one head is peft's "default" adapter (as TRL names it)."""
    import torch

    examples = manifest.examples_seen
    assert examples is not None
    final = step_dir(out, examples)
    with writing(final, folder=True) as tmp:  # .step-K.<writer>.tmp/, renamed to step-K/ once whole
        shutil.rmtree(tmp, ignore_errors=True)
        if list(heads) == [FULL]:
            model.save_pretrained(str(tmp / FULL))
            if tokenizer is not None:
                tokenizer.save_pretrained(str(tmp / FULL))
        elif default_adapter:
            model.save_pretrained(str(tmp / heads[0]), selected_adapters=["default"])  # "default" saves at the root
        else:
            model.save_pretrained(str(tmp), selected_adapters=list(heads))  # → tmp/<head>/ plain peft dirs
        torch.save({head: opt.state_dict() for head, opt in optimizers.items()}, tmp / OPTIMIZER_STATE)
        (tmp / CARD).write_text(card(manifest, f"{out.name}/{final.name}", []))  # the Hub's page, when uploaded
        (tmp / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2) + "\n")  # written last: marks it whole
    for seen, path in list_checkpoints(out):
        if seen != examples:
            (path / OPTIMIZER_STATE).unlink(missing_ok=True)
    return final


def prepare_out(out: Path, resume: bool) -> tuple[int, Path | None]:
    """Examples already done and the checkpoint to resume from; refuses to mix runs in one folder."""
    if out.exists() and not out.is_dir():
        raise LikraError(f"--out {out}: exists and is not a directory")
    for stale in out.glob(".step-*.tmp"):  # an interrupted save; the checkpoint before it is whole
        shutil.rmtree(stale, ignore_errors=True)
    done = list_checkpoints(out) if out.is_dir() else []
    if done and not resume:
        raise LikraError(f"--out {out}: already holds checkpoints; add --resume to continue, or pick a new folder")
    if not done:
        return 0, None
    examples, path = done[-1]
    if not (path / OPTIMIZER_STATE).is_file():
        raise LikraError(f"{path}: has no {OPTIMIZER_STATE}, so it cannot be resumed from")
    return examples, path


def base_model_entry(loaded: LoadedModel) -> dict[str, Any]:
    return {"name": loaded.name, "path": loaded.path, "hash": weights_hash(loaded), "dtype": loaded.dtype}


def load_full(model: Any, folder: Path) -> None:
    """Load a full fine-tuning checkpoint's weights into ``model`` (tied weights are saved once)."""
    from safetensors.torch import load_file

    state = {}
    for shard in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(shard)))
    model.load_state_dict(state, strict=False)


def truncate_log(path: Path, examples: int) -> None:
    """Keep the log lines up to the checkpoint a resumed run starts from; a line that is not a log record (the
    half-written last line of a killed run) goes too."""
    if not path.is_file():
        return
    kept = [line.rstrip("\n") for _, line in iter_lines(path) if _examples(line) <= examples]
    write_text(path, "".join(line + "\n" for line in kept))  # atomic: a kill here leaves the old log whole


def _examples(line: str) -> float:
    """A log line's examples seen; infinite (after every checkpoint) for a line that is not a record."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return math.inf
    found = row.get("examples") if isinstance(row, dict) else None
    return found if isinstance(found, int) else math.inf


def manifest_of(checkpoint: Path) -> Manifest:
    """A checkpoint's ``likra.json``, checked to be one (a damaged or foreign file is named, not a traceback)."""
    path = checkpoint / MANIFEST
    row = read_json(path, keys=("base_model", "heads", "config"), what="a likra checkpoint manifest")
    return Manifest.from_json(row, path)


def read_manifest(path: str | Path) -> tuple[Path, Manifest]:
    """``path`` is a checkpoint (``.../step-K``) or a run folder (its newest checkpoint is used)."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path, manifest_of(path)
    done = list_checkpoints(path) if path.is_dir() else []
    if not done:
        raise LikraError(f"--checkpoint {path}: not a likra checkpoint (no {MANIFEST} and no step-*/ folders)")
    return done[-1][1], manifest_of(done[-1][1])


def load_checkpoint_base(
    checkpoint: str | Path,
    manifest: Manifest,
    model: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
) -> LoadedModel:
    """The base model a checkpoint needs: ``model`` when the user named one, else the name it recorded (an alias,
    a Hub id or a folder: portable across machines), else, when that name does not load here, the folder it
    was loaded from on the machine that trained it (only a hint: it may be gone). Which one is right is
    decided by the weights hash, checked afterwards (``check_base_model``)."""
    if model:
        return load_model(model, dtype=dtype, device=device)
    assert manifest.base_model is not None
    recorded = manifest.base_model
    try:
        return load_model(recorded["name"], dtype=dtype, device=device)
    except LikraError as err:
        hint = recorded.get("path")
        if hint and Path(hint).is_dir() and hint != recorded["name"]:
            return load_model(hint, dtype=dtype, device=device)
        raise LikraError(
            f"--checkpoint {checkpoint}: its base model {recorded['name']} does not load here; name it with "
            f"--model ({str(err).removeprefix('--model ')})"
        ) from None


def check_base_model(loaded: LoadedModel, checkpoint: Path, manifest: Manifest) -> None:
    """Refuse a checkpoint trained on another base model (weights hashed differently)."""
    assert manifest.base_model is not None
    expected = manifest.base_model["hash"]
    actual = weights_hash(loaded)
    if actual != expected:
        raise LikraError(
            f"--checkpoint {checkpoint}: trained on base model {manifest.base_model['name']} ({expected[:19]}…), "
            f"not on {loaded.name} ({actual[:19]}…)"
        )


def comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    return {**ADDED_OPTIONS, **{k: v for k, v in config.items() if k not in RESUME_FREE}}


def check_resumable(previous: Manifest, current: Manifest, path: Path, extends: bool = False) -> None:
    """Refuse to resume ``path`` (``previous``) with a run that would compute something else (``current``)."""
    assert previous.base_model is not None and current.base_model is not None
    if previous.base_model["hash"] != current.base_model["hash"]:
        raise LikraError(f"--resume: {path} was trained on another base model ({previous.base_model['name']})")
    old, new = comparable_config(previous.config), comparable_config(current.config)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and not (extends and k == "n"))
    if changed:
        raise LikraError(f"--resume: options differ from the run in {path.parent}: {', '.join(changed)}")
    if not extends and previous.data_hash != current.data_hash:
        raise LikraError(f"--resume: the training data differs from the run in {path.parent}")


def check_adapter(folder: Path) -> None:
    """A peft adapter folder that will load: its config readable, its weights a whole safetensors file."""
    from safetensors import safe_open

    read_json(folder / "adapter_config.json", keys=("peft_type",), what="a peft adapter config")
    weights = folder / "adapter_model.safetensors"
    try:
        with safe_open(str(weights), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                handle.get_slice(key)
        if weights.stat().st_size < 8:
            raise ValueError("too short")
    except FileNotFoundError:
        raise LikraError(f"{weights}: missing (the adapter folder is incomplete)") from None
    except Exception as err:  # SafetensorError is not exported under one name across versions
        raise LikraError(f"{weights}: not a whole safetensors file ({str(err).splitlines()[0]})") from None


def _attach(loaded: LoadedModel, checkpoint: Path, heads: Sequence[str]) -> Any:
    """Put ``heads`` (adapter folders of ``checkpoint``) on ``loaded.model`` as named peft adapters."""
    from peft import PeftModel

    for head in heads:
        check_adapter(checkpoint / head)
    try:
        with quiet_peft():
            model = PeftModel.from_pretrained(loaded.model, str(checkpoint / heads[0]), adapter_name=heads[0])
            for head in heads[1:]:
                model.load_adapter(str(checkpoint / head), adapter_name=head)
    except (ValueError, KeyError, RuntimeError) as err:  # peft's own checks: wrong shapes, unknown modules
        raise LikraError(f"--checkpoint {checkpoint}: its adapters do not load ({str(err).splitlines()[0]})") from None
    return model.eval()


@dataclass
class Checkpoint:
    """A checkpoint opened for scoring: its manifest, its base model with its heads on it (``Checkpoint.open``), and
    ``loglikelihoods`` by head; ``close`` takes the heads off again (``loaded.model`` is the plain base model)."""

    path: Path  # the step-K folder
    manifest: Manifest
    loaded: LoadedModel  # the base model; ``model`` wraps it
    model: Any  # the peft model holding the heads
    heads: list[str]  # the adapters loaded
    batch_tokens: int | None = None  # the scoring engine's (``likra.scoring.Scorer``); None: auto (1024 on the CPU)
    shared_prefix: int = 32

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        model: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        loaded: LoadedModel | None = None,
        mode: str | None = None,
        batch_tokens: int | None = None,
        shared_prefix: int = 32,
    ) -> Checkpoint:
        """Open ``path`` (a step-K folder, or a run folder: its newest checkpoint): its base model (``loaded`` when
        given, else ``model`` or the one it records, see ``load_checkpoint_base``) checked by hash, then its heads.
        ``mode`` is checked against the heads before any model loads."""
        step, manifest = read_manifest(path)
        check_scorable(step, manifest, mode)
        if loaded is None:
            loaded = load_checkpoint_base(step, manifest, model, dtype=dtype, device=device)
        check_base_model(loaded, step, manifest)
        heads = [h for h in manifest.heads if (step / h).is_dir()]
        if not heads:
            raise LikraError(f"--checkpoint {step}: none of its heads ({', '.join(manifest.heads)}) is there")
        net = _attach(loaded, step, heads)
        return cls(step, replace(manifest, heads=heads), loaded, net, heads, batch_tokens, shared_prefix)

    @property
    def prefixed(self) -> bool:
        return self.manifest.prefixed

    @property
    def scored_heads(self) -> list[str]:
        """The heads its log-likelihoods have (prefix Likra's one adapter gives both)."""
        return self.manifest.scored_heads

    def loglikelihoods(
        self,
        pairs: Sequence[tuple[str, str]],
        progress: Callable[[float], None] | None = None,
        *,
        heads: Sequence[str] | None = None,
    ) -> dict[str, list[Any]]:
        """Per head in ``heads`` (default: "base" and every scored head), each pair's ``LogLikelihood``. Two heads
        are scored in one pass; prefix Likra's adapter once per kind, after the line announcing that kind (so
        "positive" is L(answer | correct line)), and the base model on the plain pairs."""
        from likra.data.prompts import ANSWER_PREFIXES
        from likra.scoring import Scorer

        heads = tuple(heads) if heads is not None else ("base", *self.scored_heads)

        def scorer(names: tuple[str, ...]) -> Scorer:
            return Scorer(self.model, self.loaded.tokenizer, batch_tokens=self.batch_tokens,
                          shared_prefix_from=self.shared_prefix, heads=names)  # fmt: skip

        if not self.prefixed:
            return scorer(heads).loglikelihoods_by_head(pairs, progress)
        share = (lambda n: progress(n / len(heads))) if progress is not None else None
        out = {}
        for head in heads:
            own = pairs if head == "base" else [(ANSWER_PREFIXES[head] + c, x) for c, x in pairs]
            out[head] = scorer((head if head == "base" else PREFIX_HEAD,)).loglikelihoods_by_head(own, share)
            out[head] = next(iter(out[head].values()))
        return out

    def close(self) -> None:
        """Take the adapters out again: ``loaded.model`` is the plain base model afterwards."""
        self.model.unload()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_scorable(step: Path, manifest: Manifest, mode: str | None = None) -> None:
    """Refuse, before any model loads, an agent's checkpoint or a mode its heads cannot give."""
    from likra.metrics import check_mode_heads

    if manifest.format == NAT_FORMAT:
        raise LikraError(f"--checkpoint {step}: a NAT (agent) checkpoint; use likra nat eval")
    if mode is not None:
        check_mode_heads(mode, manifest.scored_heads, str(step))


def open_merged(
    path: str | Path, model: str | None, dtype: str = "auto", device: str = "auto"
) -> tuple[LoadedModel, Manifest, Path]:
    """A NAT checkpoint's agent as one plain model, for fast generation: a full fine-tuning's folder, or its base
    model (found as a Likra checkpoint's is, unless ``model`` names another) with its LoRA merged in."""
    from peft import PeftModel

    step, manifest = read_manifest(path)
    if manifest.format != NAT_FORMAT:
        raise LikraError(f"--checkpoint {path}: not a NAT checkpoint (a Likra one? use likra eval)")
    if manifest.heads == [FULL]:
        return load_model(str(step / FULL), dtype=dtype, device=device), manifest, step
    loaded = load_checkpoint_base(step, manifest, model, dtype=dtype, device=device)
    check_base_model(loaded, step, manifest)
    with quiet_peft():
        merged = PeftModel.from_pretrained(loaded.model, str(step / manifest.heads[0])).merge_and_unload()
    loaded.model = merged.eval()
    return loaded, manifest, step
