"""likra.files: the user's files read with named errors, atomic writes that say why they failed, folder locks."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from likra import files
from likra.errors import LikraError


def test_read_text_names_the_line_of_a_bad_byte_and_accepts_a_bom(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"a": 1}\n{"b": "caf\xe9"}\n')
    with pytest.raises(LikraError, match=r"bad.jsonl:2: not UTF-8"):
        files.read_text(bad)
    with pytest.raises(LikraError, match=r"bad.jsonl:2: not UTF-8"):
        list(files.iter_lines(bad))
    bom = tmp_path / "bom.json"
    bom.write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert files.read_json(bom) == {"a": 1}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("{oops", "malformed JSON (line 1"), ("", "malformed JSON (empty)"), ("[]", "got a JSON list"),
     ('{"heads": []}', "no 'base_model'")],
)  # fmt: skip
def test_read_json_names_the_file_and_what_it_should_be(tmp_path, text, fragment):
    path = tmp_path / "likra.json"
    path.write_text(text)
    with pytest.raises(LikraError, match=r"likra\.json") as err:
        files.read_json(path, keys=("base_model", "heads"), what="a manifest")
    assert fragment in str(err.value)


def test_writing_removes_the_temporary_and_names_a_full_disk(tmp_path, monkeypatch):
    target = tmp_path / "out" / "r.json"
    files.write_json(target, {"a": 1})

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(target), "write_text", full)
    with pytest.raises(LikraError, match=r"r\.json: cannot write .no space left on the device"):
        files.write_json(target, {"a": 2})
    assert files.read_json(target) == {"a": 1}  # the old file is whole
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]  # no .r.json.tmp left


def test_writing_a_folder_names_torch_s_opaque_write_error(tmp_path, monkeypatch):
    target = tmp_path / "step-8"
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _p: type("U", (), {"free": 0})())
    with (
        pytest.raises(LikraError, match=r"step-8: cannot write \(no space left"),
        files.writing(target, folder=True) as tmp,
    ):
        tmp.mkdir()
        (tmp / "part").write_text("x")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file")
    assert list(tmp_path.iterdir()) == []
    # anything else is not the disk's fault: shown as it is
    with pytest.raises(ValueError, match="a bug"), files.writing(tmp_path / "x.json"):
        raise ValueError("a bug")


def test_check_outputs_refuses_before_any_work(tmp_path):
    data = tmp_path / "q.jsonl"
    data.write_text("{}\n")
    (tmp_path / "afile").write_text("")
    cases = [
        ({"--out": tmp_path}, {}, "is a directory"),
        ({"--out": tmp_path / "afile" / "x.json"}, {}, "afile is a file"),
        ({"--out": tmp_path / "s.json", "--items-out": tmp_path / "s.json"}, {}, "the same file as --out"),
        ({"--items-out": data}, {"--task": data}, "would overwrite the input --task"),
    ]
    for outputs, inputs, fragment in cases:
        with pytest.raises(LikraError, match=fragment):
            files.check_outputs(outputs, inputs)
    files.check_outputs({"--out": tmp_path / "new" / "r.json", "--items-out": None}, {"--task": data})


HOLD = """
import sys, time
from likra.files import claim
with claim(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_claim_refuses_a_second_writer_names_it_and_takes_over_when_it_dies(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        in_use = rf"--out {folder}: in use by process {holder.pid} on "
        with pytest.raises(files.FolderInUse, match=in_use), files.claim(folder):
            pass
        holder.kill()  # as kill -9 would: the kernel drops its lock, the lock file stays behind
        holder.wait()
        assert (folder / files.LOCK).is_file()
        with files.claim(folder), pytest.raises(files.FolderInUse), files.claim(folder):  # one writer per process too
            pass
    finally:
        holder.kill()


def test_claim_with_wait_blocks_until_the_holder_is_done(tmp_path):
    folder = tmp_path / "scores"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), "2"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    start = time.perf_counter()
    with files.claim(folder, wait=True):
        assert time.perf_counter() - start > 1.0  # the holder sleeps 2 s after taking it
    holder.wait()


def test_two_writers_of_one_output_each_leave_a_whole_file(tmp_path):
    """Issue 38, root cause 3: two ``likra score --out SAME`` shared one temporary name; the second renamed it
    while the first was still writing into it, leaving a file of both runs' lines and the first failing."""
    target = tmp_path / "out.jsonl"
    first_started, second_done, errors = threading.Event(), threading.Event(), []

    def first_rows():
        yield {"writer": "first", "i": 0}
        first_started.set()
        second_done.wait(10)  # the second writer starts and finishes while the first is mid-file
        yield from ({"writer": "first", "i": i} for i in range(1, 2000))

    def first_writer():
        try:
            files.write_jsonl(target, first_rows())
        except Exception as err:
            errors.append(err)

    thread = threading.Thread(target=first_writer)
    thread.start()
    assert first_started.wait(10)
    files.write_jsonl(target, ({"writer": "second", "i": i} for i in range(500)))
    second_done.set()
    thread.join(10)
    assert not errors, errors
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert rows == [{"writer": "first", "i": i} for i in range(2000)]  # whole: the later rename wins
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary left


WRITERS = {
    "write_text": (lambda path, rows: files.write_text(path, "".join(json.dumps(r) + "\n" for r in rows)), "x.txt"),
    "write_json": (files.write_json, "x.json"),
    "write_jsonl": (files.write_jsonl, "x.jsonl"),
    "write_csv": (lambda path, rows: files.write_csv(path, rows or [{"k": ""}]), "x.csv"),
}


@pytest.mark.parametrize("writer", WRITERS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.lists(st.fixed_dictionaries({"k": st.text(max_size=300)}), max_size=300),
    second=st.lists(st.fixed_dictionaries({"k": st.text(max_size=300)}), max_size=300),
)
def test_concurrent_writers_of_one_output_leave_one_of_their_files_whole(tmp_path_factory, writer, first, second):
    """Whatever each writes and however their writes interleave, the output is one writer's whole file."""
    write, name = WRITERS[writer]
    folder = tmp_path_factory.mktemp("writers")
    path = folder / name
    alone = {}
    for label, rows in (("first", first), ("second", second)):
        write(folder / f"{label}-{name}", rows)
        alone[label] = (folder / f"{label}-{name}").read_bytes()
    threads = [threading.Thread(target=write, args=(path, rows)) for rows in (first, second) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert path.read_bytes() in alone.values()
    assert sorted(p.name for p in folder.iterdir()) == sorted([name, f"first-{name}", f"second-{name}"])
