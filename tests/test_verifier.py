"""likra.verifier and likra.calibration: answers scored on their own, streamed, calibrated; `likra score`."""

from __future__ import annotations

import json

import pytest

from likra.calibration import CalibrationConfig, calibrate, fit, reliability
from likra.data import get_task, load_items
from likra.errors import LikraError
from likra.evaluation import EvalConfig, evaluate
from likra.metrics import SCORES, combine
from likra.verifier import Verifier, VerifierConfig, parse_row, score_file

from .conftest import copy_run
from .test_cli import assert_one_line_error, likra


@pytest.mark.parametrize(
    "row, fragment",
    [
        ([1, 2], "expected a JSON object, got list"),
        ({"answer": "x"}, "'question' should be a non-empty string"),
        ({"question": "q"}, "give 'answer' (one) or 'candidates' (a list)"),
        ({"question": "q", "answer": "a", "candidates": ["a"]}, "not both or neither"),
        ({"question": "q", "candidates": []}, "'candidates' should be a non-empty list"),
        ({"question": "q", "candidates": ["a", " "]}, "candidate 1 should be a non-empty string"),
        ({"question": "q", "answer": 3}, "'answer' should be a non-empty string"),
        ({"id": [1], "question": "q", "answer": "a"}, "'id' should be a string or a number"),
    ],
)
def test_a_bad_row_is_named(row, fragment):
    with pytest.raises(LikraError) as err:
        parse_row(row, "rows.jsonl:3")
    assert str(err.value).startswith("rows.jsonl:3: ") and fragment in str(err.value)


def arc_rows(data_dir, n=6):
    items = load_items(get_task("arc_challenge"), "test", data_dir)[:n]
    return items, [{"id": i.id, "question": i.question, "candidates": i.choices} for i in items]


def test_scores_are_the_evaluations_numbers_and_rank_as_likra_picks(runs, data_dir):
    items, rows = arc_rows(data_dir)
    verifier = Verifier(str(runs / "both"))
    answers = verifier.score(rows)
    # one answer alone gets the numbers it gets among the candidates
    single = verifier.score([{"id": "x", "question": items[0].question, "answer": items[0].choices[2]}])
    verifier.close()  # the plain base model again, for evaluate to put the heads on
    expected = evaluate(verifier.loaded, EvalConfig(limit=6, data_dir=str(data_dir), checkpoint=str(runs / "both"),
                                                    calibrate=False)).items  # fmt: skip
    by_question = [[a for a in answers if a["id"] == item.id] for item in items]
    for scored, ref in zip(by_question, expected, strict=True):
        assert [a["loglikelihood"]["base"] for a in scored] == pytest.approx(ref.loglikelihoods, abs=1e-5)
        assert [a["loglikelihood"]["negative"] for a in scored] == pytest.approx(ref.heads["negative"], abs=1e-5)
        likra_norm = SCORES["acc_norm"](combine(ref, "likra"))
        assert [a["score"] for a in scored] == pytest.approx(likra_norm, abs=1e-5)
        best = max(range(len(likra_norm)), key=lambda i: likra_norm[i])
        assert next(a["index"] for a in scored if a["rank"] == 1) == best
        assert sorted(a["rank"] for a in scored) == list(range(1, len(scored) + 1))
    assert single[0]["score"] == pytest.approx(by_question[0][2]["score"], abs=1e-5)
    assert "rank" not in single[0] and "index" not in single[0] and "p_correct" not in single[0]


def test_files_stream_in_chunks_and_a_bad_row_leaves_no_output(runs, data_dir, tmp_path):
    _, rows = arc_rows(data_dir, 5)
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    whole = Verifier(VerifierConfig(checkpoint=str(runs / "both")))
    assert score_file(whole, source, tmp_path / "whole.jsonl") == sum(len(r["candidates"]) for r in rows)
    small = Verifier(VerifierConfig(checkpoint=str(runs / "both"), chunk=2))
    score_file(small, source, tmp_path / "chunked.jsonl")
    a, b = ((tmp_path / f).read_text().splitlines() for f in ("whole.jsonl", "chunked.jsonl"))
    for x, y in zip(a, b, strict=True):
        x, y = json.loads(x), json.loads(y)
        assert x["score"] == pytest.approx(y["score"], abs=1e-5) and x["rank"] == y["rank"]
    source.write_text(source.read_text() + '{"question": "no answer"}\n')
    with pytest.raises(LikraError, match=f"{source}:6: "):
        score_file(small, source, tmp_path / "broken.jsonl")
    assert not (tmp_path / "broken.jsonl").exists()


def test_platt_and_isotonic_maps_and_the_ece():
    scores = [-3, -2, -1, -0.5, 0, 0.5, 1, 2, 3, 4]
    labels = [False, False, False, True, False, True, False, True, True, True]
    platt = fit(scores, labels, "platt")
    assert platt["coef"][0] > 0  # a higher score is likelier correct
    iso = fit(scores, labels, "isotonic")
    assert iso["y"] == sorted(iso["y"]) and 0 <= min(iso["y"]) <= max(iso["y"]) <= 1
    # two bins: 0.2, 0.4 (mean .3, 1 of 2 correct) and 0.9 (0 of 1): ECE = 2/3·|.3 - .5| + 1/3·|.9 - 0|
    assert reliability([0.2, 0.4, 0.9], [True, False, False], 2)["ece"] == pytest.approx(2 / 3 * 0.2 + 0.3)
    with pytest.raises(LikraError, match="both correct and wrong"):
        fit([1, 2], [True, True], "platt")


def test_calibration_is_stored_beside_the_checkpoint_and_gives_p_correct(runs, data_dir, tmp_path):
    run = copy_run(runs, tmp_path)
    verifier = Verifier(str(run))
    with pytest.raises(LikraError, match="--split test: the test split"):
        calibrate(verifier, CalibrationConfig(split="test", data_dir=str(data_dir)))
    report = calibrate(verifier, CalibrationConfig(limit=20, data_dir=str(data_dir)), tmp_path / "report")
    assert (tmp_path / "report" / "reliability.png").stat().st_size > 0
    assert {"ece_before", "ece_after"} <= set(report["calibration"]["fitted_on"])
    _, rows = arc_rows(data_dir, 2)
    calibrated = Verifier(str(run)).score(rows)
    assert all(0 <= a["p_correct"] <= 1 for a in calibrated)
    other_mode = Verifier(VerifierConfig(checkpoint=str(run), mode="sft")).score(rows)
    assert all("p_correct" not in a for a in other_mode)  # fitted for likra, w=1: no probability for sft


def test_likra_score_command(runs, data_dir, tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text('{"id": "a", "question": "What do bees make?", "candidates": ["honey", "steel"]}\n'
                      '{"id": "b", "question": "Ice is?", "answer": "cold"}\n')  # fmt: skip
    out = tmp_path / "scores.jsonl"
    result = likra("score", "--checkpoint", str(runs / "both"), "--input", str(source), "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(a["id"], a.get("rank") is not None) for a in lines] == [("a", True), ("a", True), ("b", False)]
    source.write_text('{"id": "a", "question": "q", "candidates": "honey"}\n')
    bad = likra("score", "--checkpoint", str(runs / "both"), "--input", str(source), "--out", str(tmp_path / "x"))
    assert_one_line_error(bad, f"{source}:1: 'candidates' should be a non-empty list")
    source.write_text('{"id": "b", "question": "Ice is?", "answer": "cold"}\n')
    missing = likra("score", "--checkpoint", str(runs / "pos"), "--mode", "likra", "--input", str(source),
                    "--out", str(tmp_path / "x"))  # fmt: skip
    assert_one_line_error(missing, "--mode likra")


def test_calibrate_checks_its_report_folder_before_replacing_the_stored_calibration(runs, data_dir, tmp_path):
    """Issue 38, root cause 4: `likra calibrate --out FILE` fitted, replaced the checkpoint's calibration.json, and
    only then failed on --out."""
    run = copy_run(runs, tmp_path)
    in_the_way = tmp_path / "report.txt"
    in_the_way.write_text("mine\n")
    result = likra("calibrate", "--checkpoint", str(run), "--limit", "20", "--out", str(in_the_way), data_dir=data_dir)
    assert_one_line_error(result, f"--out {in_the_way}: exists and is not a directory")
    assert not list(run.rglob("calibration.json"))  # nothing fitted, nothing replaced
    assert in_the_way.read_text() == "mine\n"
    verifier = Verifier(str(run))
    with pytest.raises(LikraError, match="exists and is not a directory"):
        calibrate(verifier, CalibrationConfig(limit=20, data_dir=str(data_dir)), in_the_way)
    assert not list(run.rglob("calibration.json"))
