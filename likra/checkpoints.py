"""The run folder: what a checkpoint is on disk, and how it is written, found, resumed from and loaded.

    run/
      step-K/                   one checkpoint per save point, K = examples (questions) seen
        likra.json              the manifest: format, base model (name, path, weights hash), heads, config, data
        positive/ negative/     plain peft adapter folders (or prefix/, or model/ for a full fine-tuning)
        optimizer.pt            the optimiser state, in the newest checkpoint only (for --resume)
      train_log.jsonl           one line per optimiser step
      .likra.lock               held while a process writes the folder (likra.files.claim)

Training (``likra.training``, ``likra.baselines``, NAT) writes it; evaluation, the lm-eval plugin, the experiments
and the CLI read it. This module imports neither side, so they depend on it and not on each other.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from likra.errors import LikraError
from likra.files import read_json, write_text, writing
from likra.models import LoadedModel, load_model, weights_hash

HEADS = ("positive", "negative")
PREFIX_HEAD = "prefix"  # prefix Likra's one adapter, trained on both kinds of answer after a line naming the kind
FULL = "model"  # the one "head" of a full fine-tuning run: all weights train, saved as a plain model folder
MANIFEST = "likra.json"
OPTIMIZER_STATE = "optimizer.pt"
TRAIN_LOG = "train_log.jsonl"


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
    manifest: dict[str, Any],
    tokenizer: Any = None,
    default_adapter: bool = False,
) -> Path:
    """Write to a temporary directory, then rename: a kill mid-save leaves the previous checkpoint whole.
    LoRA heads are plain peft folders ``<head>/``; a full fine-tuning run is a plain model folder ``model/`` (with
    the tokenizer, so ``--model step-K/model`` loads it). The optimiser state (needed only to resume) is kept in
    the newest checkpoint alone. ``default_adapter``: the one head is peft's "default" adapter (as TRL names it)."""
    examples = manifest["examples_seen"]
    final = step_dir(out, examples)
    with writing(final, folder=True) as tmp:  # .step-K.tmp/, renamed to step-K/ once whole (removed on failure)
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
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")  # written last: marks it complete
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
    """Keep the log lines up to the checkpoint a resumed run starts from."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["examples"] <= examples]
    write_text(path, "".join(line + "\n" for line in kept))  # atomic: a kill here leaves the old log whole


def uses_prefix(manifest: dict[str, Any]) -> bool:
    """Whether a checkpoint is prefix Likra's (one adapter scored after each kind's line)."""
    return manifest["config"].get("method") == "prefix"


def manifest_of(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's ``likra.json``, checked to be one (a damaged or foreign file is named, not a traceback)."""
    return read_json(checkpoint / MANIFEST, keys=("base_model", "heads", "config"), what="a likra checkpoint manifest")


def read_manifest(path: str | Path) -> tuple[Path, dict[str, Any]]:
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
    manifest: dict[str, Any],
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
    recorded = manifest["base_model"]
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


def check_base_model(loaded: LoadedModel, path: str | Path) -> tuple[Path, dict[str, Any]]:
    """Refuse a checkpoint trained on another base model (weights hashed differently)."""
    checkpoint, manifest = read_manifest(path)
    expected = manifest["base_model"]["hash"]
    actual = weights_hash(loaded)
    if actual != expected:
        raise LikraError(
            f"--checkpoint {checkpoint}: trained on base model {manifest['base_model']['name']} ({expected[:19]}…), "
            f"not on {loaded.name} ({actual[:19]}…)"
        )
    return checkpoint, manifest


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


def load_heads(loaded: LoadedModel, path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Put a checkpoint's heads on ``loaded.model`` (as named peft adapters) after checking the base model."""
    from peft import PeftModel

    checkpoint, manifest = check_base_model(loaded, path)
    heads = [h for h in manifest["heads"] if (checkpoint / h).is_dir()]
    if not heads:
        raise LikraError(f"--checkpoint {checkpoint}: none of its heads ({', '.join(manifest['heads'])}) is there")
    for head in heads:
        check_adapter(checkpoint / head)
    try:
        with quiet_peft():
            model = PeftModel.from_pretrained(loaded.model, str(checkpoint / heads[0]), adapter_name=heads[0])
            for head in heads[1:]:
                model.load_adapter(str(checkpoint / head), adapter_name=head)
    except (ValueError, KeyError, RuntimeError) as err:  # peft's own checks: wrong shapes, unknown modules
        raise LikraError(f"--checkpoint {checkpoint}: its adapters do not load ({str(err).splitlines()[0]})") from None
    model.eval()
    return model, {**manifest, "checkpoint": str(checkpoint), "heads": heads}
