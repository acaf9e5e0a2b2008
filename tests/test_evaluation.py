"""likra.evaluation: a config that refuses what cannot work, the items chosen, items files, heads-only passes."""

from __future__ import annotations

import json
import math

import pytest

from likra.data.items import select_items
from likra.errors import LikraError
from likra.evaluation import EvalConfig, evaluate, read_items, write_items
from likra.training import TrainConfig, train


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"batch_tokens": 0}, "--batch-tokens 0"),
        ({"mode": "likra"}, "--mode likra: needs trained heads"),
        ({"mode": "guess"}, "--mode guess"),
        ({"neg_weight": math.nan}, "--neg-weight nan"),
        ({"norm": "words"}, "--norm words"),
    ],
)
def test_the_config_refuses_what_the_cli_refuses(options, fragment):
    with pytest.raises(LikraError, match=fragment.replace("(", r"\(")):
        EvalConfig(**options)


def test_items_are_the_first_n_or_a_seeded_sample_in_file_order():
    items = list(range(100))
    assert select_items(items, 5, None, 1) == [0, 1, 2, 3, 4]
    sample = select_items(items, None, 10, 1)
    assert sample == sorted(sample) and len(set(sample)) == 10
    assert select_items(items, None, 10, 1) == sample != select_items(items, None, 10, 2)
    assert select_items(items, None, 1000, 1) == items
    with pytest.raises(LikraError, match="--limit and --sample exclude each other"):
        select_items(items, 5, 5, 1)
    with pytest.raises(LikraError, match="--sample 0: must be a positive number"):
        select_items(items, None, 0, 1)


def test_items_files_round_trip_and_a_damaged_row_is_named(tmp_path, data_dir, fresh):
    items = evaluate(fresh(), EvalConfig(limit=3, data_dir=str(data_dir))).items
    path = tmp_path / "items.jsonl"
    write_items(path, items)
    assert read_items(path) == items
    rows = path.read_text().splitlines()
    broken = json.loads(rows[1])
    broken["loglikelihoods"] = broken["loglikelihoods"][:-1]  # one number short of the choices
    path.write_text("\n".join([rows[0], json.dumps(broken), rows[2]]) + "\n")
    with pytest.raises(LikraError, match=f"{path}:2: "):
        read_items(path)


def test_heads_only_pass_reuses_stored_base_scores(tmp_path, data_dir, fresh):
    train(fresh(), TrainConfig(n=24, data_dir=str(data_dir), seed=3), tmp_path / "run")
    config = EvalConfig(limit=12, data_dir=str(data_dir))
    base = evaluate(fresh(), config).items
    checkpoint = EvalConfig(limit=12, data_dir=str(data_dir), checkpoint=str(tmp_path / "run"))
    full = evaluate(fresh(), checkpoint).items
    reused = evaluate(fresh(), checkpoint, base=base).items
    for a, b in zip(full, reused, strict=True):
        assert a.loglikelihoods == pytest.approx(b.loglikelihoods, abs=1e-5)
        for head in ("positive", "negative"):
            assert a.heads[head] == pytest.approx(b.heads[head], abs=1e-5)
            assert a.heads_unconditional[head] == pytest.approx(b.heads_unconditional[head], abs=1e-5)
    with pytest.raises(LikraError, match="same questions"):
        evaluate(fresh(), checkpoint, base=base[:5])
    with pytest.raises(LikraError, match="--base-items: only with --checkpoint"):
        evaluate(fresh(), config, base=base)


def test_subjects_keep_only_their_questions_and_an_unknown_one_is_named(data_dir):
    from likra.evaluation import EvalConfig, prepare

    kept = prepare(EvalConfig(task="mmlu", subjects=["astronomy", "college_physics"], data_dir=str(data_dir)))
    assert {r.item.meta["subject"] for r in kept} == {"astronomy", "college_physics"} and len(kept) == 152 + 102
    with pytest.raises(LikraError, match="--subjects astrology: not a subject of mmlu"):
        prepare(EvalConfig(task="mmlu", subjects=["astrology"], data_dir=str(data_dir)))
    with pytest.raises(LikraError, match="--subjects: arc_challenge questions have no subject"):
        prepare(EvalConfig(subjects=["astronomy"], data_dir=str(data_dir)))


def test_fewshot_sampler_gives_every_question_the_same_shots_or_its_own(data_dir):
    from likra.evaluation import EvalConfig, prepare

    def shots(**options) -> list[str]:
        requests = prepare(EvalConfig(limit=5, shots=3, data_dir=str(data_dir), **options))
        return [r.contexts[0][: -len(f"Question: {r.item.question}\nAnswer:")] for r in requests]

    first_n = shots(fewshot_sampler="first_n")
    assert len(set(first_n)) == 1 and first_n[0].count("Question: ") == 3  # ARC's first 3 train questions
    assert len(set(shots())) == 5 and shots() == shots(fewshot_sampler="random")  # ARC's default: per question
    mmlu = prepare(EvalConfig(task="mmlu", subjects=["astronomy"], limit=3, shots=2, fewshot_sampler="random",
                              data_dir=str(data_dir)))  # fmt: skip
    dev = [line for line in (data_dir / "mmlu" / "mmlu_dev.jsonl").open() if '"astronomy"' in line]
    assert len({r.contexts[0].split("Question: ")[1] for r in mmlu}) > 1  # MMLU's default first_n overridden
    shot_questions = [q.split("\n")[0][:30] for r in mmlu for q in r.contexts[0].split("Question: ")[1:3]]
    assert all(q in "".join(dev) for q in shot_questions)  # still from the question's own subject
    with pytest.raises(LikraError, match="--fewshot-sampler last: not one of first_n, random"):
        prepare(EvalConfig(fewshot_sampler="last", data_dir=str(data_dir)))
    with pytest.raises(LikraError, match="--shared-prefix -1: must be 0 or more"):
        prepare(EvalConfig(shared_prefix=-1, data_dir=str(data_dir)))

