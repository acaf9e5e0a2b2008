"""likra.nat.training: NAT training on the tiny model."""

from __future__ import annotations

import json

from likra.models import LoadedModel
from likra.nat.runs import AgentEvalConfig, evaluate_agent
from likra.nat.tasks import load_problems

from ..conftest import tiny_llama
from .helpers import STRATEGYQA


def test_nat_training_writes_a_plain_peft_adapter(tmp_path, tokenizer, tiny_model_dir, data_dir, release_sample):
    from peft import PeftModel

    from likra.nat.training import NATConfig, select_trajectories, train_agent

    pos, neg = release_sample
    config = NATConfig(pos=[str(pos)], neg=[str(neg)], neg_num=4, data_dir=str(data_dir), max_length=256)
    data = select_trajectories(config)
    assert (data.positives, data.negatives) == (6, 4)
    loaded = LoadedModel(tiny_llama(len(tokenizer)), tokenizer, "tiny", str(tiny_model_dir), "cpu", "float32")
    result = train_agent(loaded, config, tmp_path / "run", data=data)
    step = tmp_path / "run" / "step-10"
    manifest = json.loads((step / "likra.json").read_text())
    assert result.checkpoints == [step] and manifest["format"] == "likra-nat-checkpoint"
    assert manifest["data"]["positives"] == 6 and manifest["template"] == "negative-aware"
    adapted = PeftModel.from_pretrained(tiny_llama(len(tokenizer)), str(step / "agent"))  # plain peft loads it
    assert adapted.peft_config["default"].r == 16
    config = AgentEvalConfig(checkpoint=str(tmp_path / "run"), limit=2, max_steps=1, max_new_tokens=4,
                             data_dir=str(data_dir))  # fmt: skip
    results = evaluate_agent(config, tmp_path / "eval")
    assert results["checkpoint"] == str(step) and results["template"] == "negative-aware"
    assert results["metrics"]["n"] == 2
    only_pos = select_trajectories(NATConfig(pos=[str(pos)], neg=[str(neg)], neg_num=0, data_dir=str(data_dir)))
    assert (only_pos.positives, only_pos.negatives) == (6, 0)


def test_trajectories_of_evaluation_questions_are_dropped(data_dir):
    from likra.nat.training import NATConfig, select_trajectories

    files = data_dir / STRATEGYQA
    config = NATConfig(
        pos=[str(files / "strategyqa_gpt-3.5_positive.json")],
        neg=[str(files / "strategyqa_gpt-3.5_negative.json")],
        data_dir=str(data_dir),
    )
    data = select_trajectories(config)
    test = {p.question.lower() for p in load_problems("strategyqa", "test", data_dir)}
    assert data.dropped > 0 and data.empty == 7
    assert not any(t.question.lower() in test for t in data.trajectories)
    assert data.positives + data.negatives + data.dropped + data.empty == 1070 + 1263


def test_full_fine_tuning_saves_a_model_folder(tmp_path, tokenizer, tiny_model_dir, data_dir, release_sample):
    from likra.models import load_model
    from likra.nat.training import NATConfig, train_agent

    pos, _ = release_sample
    config = NATConfig(pos=[str(pos)], full=True, lr=1e-3, data_dir=str(data_dir), max_length=512)
    loaded = LoadedModel(tiny_llama(len(tokenizer)), tokenizer, "tiny", str(tiny_model_dir), "cpu", "float32")
    train_agent(loaded, config, tmp_path / "full")
    reloaded = load_model(str(tmp_path / "full" / "step-6" / "model"))
    trained = loaded.model.state_dict()
    assert all((reloaded.model.state_dict()[k] == v).all() for k, v in trained.items())
    assert not (tiny_llama(len(tokenizer)).state_dict()["model.norm.weight"] == trained["model.norm.weight"]).all()
