"""The run folder (likra/checkpoints.py): a checkpoint copied to another machine finds its base model by name."""

from __future__ import annotations

import json
import shutil

import pytest

from likra.errors import LikraError

from .conftest import copy_run
from .test_cli import GOOD, likra


def test_a_likra_checkpoint_copied_elsewhere_loads_its_base_model_by_name(runs, tmp_path, tiny_model_dir):
    questions = tmp_path / "q.jsonl"
    questions.write_text(GOOD + "\n")
    moved = copy_run(runs, tmp_path)
    manifest = moved / "step-8" / "likra.json"
    data = json.loads(manifest.read_text())
    assert data["base_model"]["name"] == str(tiny_model_dir)  # the name it was given: portable
    data["base_model"]["path"] = str(tmp_path / "gone")  # where the model was on the machine that trained it
    manifest.write_text(json.dumps(data))
    metrics = []
    for number, run in enumerate((runs / "both", moved)):
        out = tmp_path / f"eval-{number}.json"
        result = likra("eval", "--checkpoint", str(run), "--task", f"jsonl:{questions}", "--out", str(out))
        assert result.returncode == 0, result.stderr
        metrics.append(json.loads(out.read_text())["metrics"])
    assert metrics[0] == metrics[1]


def test_a_nat_checkpoint_finds_its_base_model_by_name_when_the_cache_moved(runs, tmp_path, tiny_model_dir):
    from likra.models import DEFAULT_MODEL
    from likra.nat.runs import load_agent

    nat = tmp_path / "nat"
    shutil.copytree(runs / "pos", nat)
    manifest = nat / "step-8" / "likra.json"
    data = json.loads(manifest.read_text())
    data["format"] = "likra-nat-checkpoint"
    data["base_model"]["path"] = str(tmp_path / "moved-away")  # where the cache was on the machine that trained it
    manifest.write_text(json.dumps(data))
    loaded, _, found = load_agent(DEFAULT_MODEL, str(nat))
    assert loaded.path == str(tiny_model_dir) and found == str(nat / "step-8")
    data["base_model"]["name"] = "no-such-model"  # neither its name nor its old path loads here
    manifest.write_text(json.dumps(data))
    with pytest.raises(
        LikraError, match=r"step-8: its base model no-such-model does not load here; name it with --model"
    ):
        load_agent(DEFAULT_MODEL, str(nat))
    assert load_agent(str(tiny_model_dir), str(nat))[0].path == str(tiny_model_dir)  # --model overrides


def test_a_manifest_reads_back_to_the_same_bytes_and_a_wrong_one_is_named(runs, tmp_path):
    from likra.checkpoints import Manifest, manifest_of

    step = runs / "both" / "step-8"
    text = (step / "likra.json").read_text()
    manifest = manifest_of(step)
    assert manifest.heads == ["positive", "negative"] and manifest.examples_seen == 8
    assert json.dumps(manifest.to_json(), indent=2) + "\n" == text  # written as read: one place owns the format
    future = {**json.loads(text), "added_later": {"x": 1}}  # a key a later version wrote is kept, not lost
    assert Manifest.from_json(future, step).to_json()["added_later"] == {"x": 1}
    broken = tmp_path / "step-8"
    shutil.copytree(step, broken)
    (broken / "likra.json").write_text(json.dumps({**json.loads(text), "heads": "positive"}))
    with pytest.raises(LikraError, match=r"step-8/likra.json: not a likra checkpoint manifest \('heads' should be a "):
        manifest_of(broken)
