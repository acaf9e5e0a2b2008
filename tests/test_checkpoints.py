"""The run folder (likra/checkpoints.py): a checkpoint copied to another machine finds its base model by name."""

from __future__ import annotations

import json
import shutil

import pytest
from huggingface_hub import ModelCard

from likra.configs import EvalConfig
from likra.errors import LikraError
from likra.evaluation import run_eval

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


# --- model cards (issue 39) -------------------------------------------------------------------------


def test_every_checkpoint_has_a_card_the_hub_reads(runs):
    for step in sorted((runs / "both").glob("step-*")):
        card = ModelCard.load(step / "README.md")
        data = card.data.to_dict()
        assert data["library_name"] == "peft" and "likra" in data["tags"]
        assert data["datasets"] == ["allenai/ai2_arc"]  # the task's Hub dataset
        assert "base_model" not in data  # the tiny model is a local folder: no Hub id to name
        manifest = json.loads((step / "likra.json").read_text())
        assert f"{manifest['examples_seen']} examples seen" in card.text
        assert "`positive/`, `negative/`" in card.text and manifest["base_model"]["hash"] in card.text
        assert "PeftModel.from_pretrained(base, \"positive\")" in card.text
    from likra.checkpoints import manifest_of
    from likra.model_card import card as render

    assert "None yet: `likra eval --checkpoint`" in render(manifest_of(step), "both/step-8", [])  # none evaluated


def test_an_evaluation_is_recorded_on_the_card_once_per_setting(runs, tmp_path, tiny_model_dir, data_dir, caplog,
                                                               monkeypatch):
    run = copy_run(runs, tmp_path)
    for earlier in run.glob("step-*/evaluations.json"):  # what other tests evaluated on the shared run
        earlier.unlink()
    config = EvalConfig(task="arc_challenge", limit=4, data_dir=str(data_dir), checkpoint=str(run), mode="likra")
    first = run_eval(config, model=str(tiny_model_dir)).results
    run_eval(config, model=str(tiny_model_dir))  # the same setting again: replaced, not added
    run_eval(EvalConfig(**{**config.__dict__, "mode": "sft"}), model=str(tiny_model_dir))
    step = sorted(run.glob("step-*"))[-1]
    recorded = json.loads((step / "evaluations.json").read_text())["evaluations"]
    assert [(e["mode"], e["n"]) for e in recorded] == [("likra", 4), ("sft", 4)]
    text = ModelCard.load(step / "README.md").text
    metrics = first["metrics"]
    row = f"| arc_challenge | test | 4 | likra | 1.0 | {metrics['acc']:.4f} | {metrics['acc_norm']:.4f} |"
    assert row in text and "| sft |" in text
    # a checkpoint that cannot be written to (a read-only cache; the suite runs as root, so simulated): the
    # evaluation still succeeds, and says so
    from likra import model_card

    def read_only(path, data):
        raise LikraError(f"{path}: cannot write (read-only file system)")

    monkeypatch.setattr(model_card, "write_json", read_only)
    with caplog.at_level("WARNING", logger="likra"):
        assert run_eval(EvalConfig(**{**config.__dict__, "limit": 2}), model=str(tiny_model_dir)).results["n"] == 2
    assert any("the model card was not updated" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("name", "hub"), [("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct"),
                                          ("google/gemma-3-270m", "google/gemma-3-270m"), ("/models/mine", None)])
def test_the_base_model_is_named_by_its_hub_id(name, hub):
    from likra.model_card import hub_id

    assert hub_id(name) == hub


def test_run_eval_takes_the_heads_off_even_when_scoring_fails(runs, tiny_model_dir, data_dir, monkeypatch):
    """The Python API's caller gets its model back without adapters whatever happens while scoring (an
    interrupted evaluation used to leave the heads attached)."""
    from likra import evaluation
    from likra.checkpoints import Checkpoint

    closed = []
    monkeypatch.setattr(Checkpoint, "close", lambda self: closed.append(self.path))
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    config = EvalConfig(task="arc_challenge", limit=2, data_dir=str(data_dir), checkpoint=str(runs / "both"))
    with pytest.raises(KeyboardInterrupt):
        evaluation.run_eval(config, model=str(tiny_model_dir))
    assert len(closed) == 1
