"""``--report-to``: the per-step training log where researchers look. TensorBoard's event files are read back with
TensorBoard's own reader, W&B's offline run file with its protobuf records; both must hold ``train_log.jsonl``'s
numbers, step for step, for Likra's loop (resumed too) and a TRL baseline (``test_baselines.py``)."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest

from likra.errors import LikraError
from likra.training import TrainConfig, train
from likra.training_log import scalars, trackers_for, training_log

from .test_cli import assert_one_line_error, likra


def log_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def expected(run: Path) -> dict[str, list[tuple[int, float]]]:
    """``train_log.jsonl`` as each tag's (step, value) series."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in log_rows(run):
        for tag, value in scalars(row).items():
            series.setdefault(tag, []).append((row["step"], value))
    return series


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def assert_same(read: dict[str, list[tuple[int, float]]], logged: dict[str, list[tuple[int, float]]]) -> None:
    assert read.keys() == logged.keys()
    for tag, series in logged.items():
        assert [s for s, _ in read[tag]] == [s for s, _ in series], tag  # each step once, in order
        assert [v for _, v in read[tag]] == pytest.approx([v for _, v in series], rel=1e-6), tag  # float32 events


def wandb_records(folder: Path) -> list:
    """The records of the one offline run under ``folder``. wandb no longer ships a Python reader of its run file
    (a LevelDB-style log of protobuf ``Record``s: 7-byte header, then 32 KiB blocks of crc/length/type chunks), so
    this reads it as wandb-core writes it."""
    from wandb.proto import wandb_internal_pb2

    (path,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    data, block, pos, parts, records = path.read_bytes(), 32768, 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        parts, pos = parts + data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a whole record, or a record's last chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            records.append(record)
            parts = b""
    return records


def test_tensorboard_holds_the_logs_numbers_and_a_resumed_run_each_step_once(tmp_path, data_dir, fresh):
    config = TrainConfig(n=24, data_dir=str(data_dir), seed=3, report_to=["tensorboard"])

    def stop_at_24(n, seen=[0]):  # noqa: B006 - a counter that lives for this run only
        seen[0] += n
        if seen[0] == 24:  # step 3 is logged, step-24 not yet saved
            raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(fresh(), config, run, progress=stop_at_24)
    assert [s for s, _ in tensorboard_scalars(run / "runs")["train/loss/positive"]] == [1, 2, 3]
    train(fresh(), config, run, resume=True)  # redoes step 3
    read = tensorboard_scalars(run / "runs")
    assert_same(read, expected(run))
    assert set(read) == {"train/loss/positive", "train/loss/negative", "train/examples", "train/examples_per_s"}
    assert [v for _, v in read["train/examples"]] == [8, 16, 24]
    files = sorted((run / "runs").iterdir())
    train(fresh(), config, run, resume=True)  # a finished run resumed: nothing to train, nothing written
    assert sorted((run / "runs").iterdir()) == files


def test_a_fresh_start_clears_the_log_of_a_run_cut_off_before_its_first_checkpoint(tmp_path, data_dir, fresh):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_log.jsonl").write_text('{"step": 1, "examples": 8, "loss": {"positive": 9.0}}\n{"step": 2, "exa')
    train(fresh(), TrainConfig(n=8, data_dir=str(data_dir), seed=3), run)
    assert [(row["step"], row["examples"]) for row in log_rows(run)] == [(1, 8)]
    assert set(log_rows(run)[0]["loss"]) == {"positive", "negative"}


@pytest.fixture
def wandb_offline(monkeypatch):
    """W&B in its offline mode, in a process with no accelerate state yet (as a new ``likra train``)."""
    from accelerate.state import PartialState

    monkeypatch.setattr(PartialState, "_shared_state", {})
    for name in ("WANDB_DIR", "WANDB_PROJECT", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_wandb_offline_holds_the_logs_numbers_and_the_runs_options(tmp_path, data_dir, fresh, wandb_offline):
    run = tmp_path / "run"
    train(fresh(), TrainConfig(n=16, data_dir=str(data_dir), seed=3, lr=2e-3, report_to=["wandb"]), run)
    records = wandb_records(run)
    (started,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    options = {item.key: json.loads(item.value_json) for item in started.config.update}
    assert started.project == "likra" and started.display_name == str(run)
    assert options["lr"] == 2e-3 and options["n"] == 16 and options["report_to"] == ["wandb"]
    read: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                tag = item.key or "/".join(item.nested_key)
                if not tag.startswith("_"):  # wandb's own _step, _runtime, _timestamp
                    read.setdefault(tag, []).append((record.history.step.num, json.loads(item.value_json)))
    assert_same(read, expected(run))


def test_a_wandb_run_cut_short_is_marked_failed(tmp_path, wandb_offline):
    with (
        pytest.raises(KeyboardInterrupt),
        training_log(tmp_path, ["wandb"], resumed_from=0, first_step=1, config={}) as write,
    ):
        write({"step": 1, "examples": 8, "loss": {"positive": 1.0}})
        raise KeyboardInterrupt
    exits = [r.exit.exit_code for r in wandb_records(tmp_path) if r.WhichOneof("record_type") == "exit"]
    assert exits == [1]
    assert log_rows(tmp_path) == [{"step": 1, "examples": 8, "loss": {"positive": 1.0}}]


@pytest.mark.parametrize(
    ("report_to", "message"),
    [
        (["csv"], "--report-to csv: expected one of none, all, tensorboard, wandb"),
        (["none", "wandb"], "--report-to none,wandb: none and all stand alone"),
        (["all", "wandb"], "--report-to all,wandb"),
    ],
)
def test_report_to_is_checked_when_the_config_is_built(data_dir, report_to, message):
    with pytest.raises(LikraError, match=message):
        TrainConfig(n=8, data_dir=str(data_dir), report_to=report_to)


def test_report_to_as_the_trainer_spells_it_in_python():
    assert TrainConfig(report_to="tensorboard").report_to == ["tensorboard"]
    assert TrainConfig(report_to="tensorboard,wandb").report_to == ["tensorboard", "wandb"]


def test_a_tracker_not_installed_is_named_with_its_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(LikraError, match=r"--report-to wandb: not installed \(pip install 'likra\[wandb\]'\)"):
        trackers_for(["tensorboard", "wandb"])
    assert trackers_for(["all"]) == ["tensorboard"]  # the Trainer's "all": those installed
    assert trackers_for(["none"]) == []


def test_wandb_without_an_account_is_one_line_and_the_log_is_left_as_it_was(tmp_path, monkeypatch):
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    import wandb

    wandb.teardown()  # wandb keeps the settings of an earlier run in this process (offline) until torn down
    kept = '{"step": 1, "examples": 8, "loss": {"positive": 1.0}}\n'
    (tmp_path / "train_log.jsonl").write_text(kept)
    with (
        pytest.raises(LikraError, match=r"--report-to wandb: could not start: .*WANDB_MODE=offline") as refused,
        training_log(tmp_path, ["tensorboard", "wandb"], resumed_from=0, first_step=1, config={}),
    ):
        pass
    assert "\n" not in str(refused.value)
    assert (tmp_path / "train_log.jsonl").read_text() == kept  # nothing lost: the run never started


def test_train_refuses_a_tracker_it_does_not_know_before_loading(tmp_path, data_dir):
    refused = likra("train", "--model", "no/such-model", "--out", str(tmp_path / "run"),
                    "--report-to", "tensorboard,csv", data_dir=data_dir)  # fmt: skip
    assert_one_line_error(refused, "--report-to csv")
    assert not (tmp_path / "run").exists()
