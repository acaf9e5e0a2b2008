"""Shared fixtures: the real tokenizer, a tiny random Llama built in code, the benchmark data folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# the suite's numbers must not depend on whether CI's CPU has native bfloat16 (auto would pick it for scoring)
os.environ.setdefault("LIKRA_NATIVE_BF16", "0")

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs ``-n auto``), the cores shared out among the workers: OpenMP threads
    of several processes on one core slow each other down many times over. Set before torch is imported, so the
    workers and the command-line processes the tests start both keep to their share."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(workers)))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="Device of the device-sensitive tests (tests/test_device.py): "
                     "cpu (CI), cuda or cuda:N where a GPU exists; they also run on meta, which refuses mixed "
                     "devices as CUDA does.")  # fmt: skip


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    """The device named by ``--device`` (cpu by default)."""
    return request.config.getoption("--device")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real benchmark files (``../shared/data`` beside the checkout, or ``$LIKRA_DATA_DIR``)."""
    path = Path(os.environ.get("LIKRA_DATA_DIR") or ROOT.parent / "shared" / "data")
    assert (path / "arc").is_dir(), f"benchmark data not found at {path}: set LIKRA_DATA_DIR"
    return path


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    from likra.models import prepare_embedded

    return prepare_embedded()


@pytest.fixture(scope="session")
def tokenizer(request):
    """The embedded model's tokenizer, or the one in ``$LIKRA_TEST_TOKENIZER`` (a folder of its files: what
    ``benchmarks/gpu_check.py`` carries to a GPU machine, where the embedded model's package is not installed)."""
    from likra.models import load_tokenizer

    folder = os.environ.get("LIKRA_TEST_TOKENIZER") or request.getfixturevalue("embedded_dir")
    return load_tokenizer(str(folder))


def tiny_llama(vocab_size: int, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_model(tokenizer):
    return tiny_llama(len(tokenizer))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_model, tokenizer) -> Path:
    """The tiny model saved as a Hugging Face directory, for the CLI."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, tiny_model_dir, data_dir) -> Path:
    """A two-head run and a positive-only run of 8 questions on the tiny model, trained once per test process by
    the call ``likra train`` makes. Tests get copies (``runs``)."""
    from likra.configs import TrainConfig
    from likra.training import run_training

    root = tmp_path_factory.mktemp("trained-runs")
    for name, heads in (("both", "both"), ("pos", "positive")):
        config = TrainConfig(model=str(tiny_model_dir), n=8, save_at=[8], heads=heads, data_dir=str(data_dir))
        run_training(config, root / name)
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory, trained_runs) -> Path:
    """A module's own copy of ``trained_runs`` (evaluations and calibrations are recorded in a checkpoint)."""
    root = tmp_path_factory.mktemp("runs")
    for run in trained_runs.iterdir():
        shutil.copytree(run, root / run.name)
    return root


@pytest.fixture
def fresh(tokenizer, tiny_model_dir):
    """A fresh copy of the tiny model each time (training wraps it in peft in place)."""

    from likra.models import LoadedModel

    def make(seed: int = 0) -> LoadedModel:
        return LoadedModel(tiny_llama(len(tokenizer), seed), tokenizer, "tiny", str(tiny_model_dir), "cpu", "float32")

    return make


def copy_run(runs, tmp_path, name="both"):
    target = tmp_path / f"copy-{name}"
    shutil.copytree(runs / name, target)
    return target
