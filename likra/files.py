"""Reading the user's files and writing ours: every failure named by its file, one writer per folder.

- Reading: text that is not UTF-8, JSON that does not parse or has the wrong shape, a missing or unreadable file
  all become one ``LikraError`` naming the file (and the line, for JSONL), never a traceback.
- Writing: through a temporary name and a rename, so an interrupted or failed write leaves the old file whole;
  a full disk, a read-only folder or a permission error is said as such, and the temporary file is removed.
- Claiming: ``claim(folder)`` holds ``folder/.likra.lock`` (an ``flock``) while a run writes there, so a second
  process is refused with the holder's pid and host. The kernel drops the lock when its process dies, however
  it dies, so a stale lock is simply taken over; Linux maps ``flock`` onto NFS byte-range locks, so processes on
  several machines sharing a filesystem exclude each other too.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import re
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from likra.errors import LikraError

LOCK = ".likra.lock"


class FolderInUse(LikraError):
    """Another live process holds the folder's lock; ``holder`` says which ("process 12 on host (since …)")."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


# --- errors -------------------------------------------------------------------------------------------


def os_error(path: str | Path, err: OSError, doing: str = "cannot write") -> LikraError:
    """An ``OSError`` as the user should read it: what failed, on which file, and why in plain words."""
    reason = {
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EISDIR: "is a folder",
        errno.ENOENT: "not found",
    }.get(err.errno, err.strerror or str(err))
    return LikraError(f"{path}: {doing} ({reason})")


def write_failure(path: Path, err: BaseException) -> LikraError | None:
    """The user's words for a failed write, or None when ``err`` is not about the disk (a bug to show as it is).
    torch and safetensors wrap the OS error in their own (``file write failed``, ``No space left``), so their text
    and the free space left decide."""
    if isinstance(err, OSError):
        return os_error(path, err)
    text = str(err)
    if "No space left" in text or "Disk quota" in text:
        return LikraError(f"{path}: cannot write (no space left on the device)")
    if not any(s in text for s in ("write failed", "enforce fail", "Permission denied", "Read-only file system")):
        return None
    try:
        full = shutil.disk_usage(next(p for p in (path, *path.parents) if p.exists())).free < 16 * 2**20
    except (OSError, StopIteration):
        full = False
    return LikraError(f"{path}: cannot write ({'no space left on the device' if full else text.splitlines()[0][:200]})")


# --- reading ------------------------------------------------------------------------------------------


def read_text(path: str | Path) -> str:
    """A UTF-8 text file (a leading byte-order mark, as Windows editors write, is accepted and dropped)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise os_error(path, err, "cannot read") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise LikraError(f"{path}:{line}: not UTF-8 text (byte {err.start}: {err.reason})") from None


class BadJSON(ValueError):
    """JSON that Python's parser refuses; the message says why in a few words."""


def load_json(text: str | bytes) -> Any:
    """``json.loads``, each way it refuses one ``BadJSON``: bad syntax, bytes that are not UTF-8, and what it
    refuses beyond syntax (nesting deeper than the recursion limit, an integer of more than 4,300 digits). Files
    (``parse_json``) and the server's request bodies (``likra.server.parse``) read JSON through it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise BadJSON("empty" if not text.strip() else f"line {err.lineno} column {err.colno}: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise BadJSON(f"not UTF-8: {err.reason} at byte {err.start}") from None
    except RecursionError:
        raise BadJSON("nested too deeply") from None
    except ValueError:  # the only other refusal: an integer over the length limit
        raise BadJSON(f"an integer of more than {sys.get_int_max_str_digits()} digits") from None


def parse_json(text: str, where: str, what: str = "JSON") -> Any:
    """``text`` parsed as JSON, or one ``LikraError`` starting with ``where`` (a file, ``FILE:LINE``, a request):
    what ``load_json`` refuses, and text no tokenizer can encode (a lone surrogate such as ``"\\ud800"``, valid
    JSON that fails only later, inside the tokenizer, after the model has loaded)."""
    try:
        data = load_json(text)
    except BadJSON as err:
        raise LikraError(f"{where}: malformed JSON ({err}); expected {what}") from None
    field = unencodable_field(data)
    if field is not None:
        raise LikraError(f"{where}: {field}: text with a lone surrogate (such as \\ud800), which no tokenizer encodes")
    return data


def unencodable_field(data: Any) -> str | None:
    """Where in ``data`` (``question``, ``choices[2]``, ``value``) a string holds a lone surrogate, or None.
    Walked with a stack: parsed JSON can nest nearly as deep as the recursion limit."""
    stack: list[tuple[str, Any]] = [("value", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return where
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return f"a key of {where}"
                stack.append((key if where == "value" else f"{where}.{key}", item))
        elif isinstance(value, list):
            stack += [(f"{where}[{i}]", item) for i, item in enumerate(value)]
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def read_json(path: str | Path, keys: tuple[str, ...] = (), what: str = "a JSON object") -> dict[str, Any]:
    """A JSON object with at least ``keys``; ``what`` says in the error what the file should have been."""
    path = Path(path)
    data = parse_json(read_text(path), str(path), what)
    if not isinstance(data, dict):
        raise LikraError(f"{path}: expected {what}, got a JSON {type(data).__name__}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise LikraError(f"{path}: not {what} (no {', '.join(repr(k) for k in missing)})")
    return data


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file, streamed; a bad byte names its line. (Read as bytes and
    decoded line by line: a text-mode file decodes in blocks, so its error cannot say which line.)"""
    try:
        handle = path.open("rb")
    except OSError as err:
        raise os_error(path, err, "cannot read") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise LikraError(f"{path}:{number}: not UTF-8 text (byte {err.start}: {err.reason})") from None


# --- writing ------------------------------------------------------------------------------------------


def temporary_name(path: Path) -> Path:
    """A temporary name beside ``path`` that is this writer's own (``.NAME.<pid>-<random>.tmp``)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def writing(path: str | Path, folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends it replaces ``path`` in one rename. A failure
    inside removes the temporary (file or ``folder``) and, for a disk or permission error, says so by name.

    The temporary's name is this writer's own (``.NAME.<pid>-<random>.tmp``): two writers of one output each
    finish with a whole file, the later rename winning, never a file mixing both. (Not ``tempfile.mkstemp``: it
    creates the file readable by its owner only, and the output would keep that.)"""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_error(path.parent, err, "cannot create the folder") from None
    tmp = temporary_name(path)
    try:
        yield tmp
        if folder:
            shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    except BaseException as err:
        if folder:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        failure = write_failure(path, err) if isinstance(err, Exception) else None
        if failure is not None:
            raise failure from None
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write a whole file atomically (see ``writing``)."""
    with writing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    """One JSON document, indented, written atomically."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]], *, ensure_ascii: bool = True) -> None:
    """One JSON object per line, written atomically (streamed: the rows need not fit in memory twice)."""
    with writing(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=ensure_ascii) + "\n")


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]], fields: Sequence[str] | None = None) -> None:
    """Rows as CSV with a header (``fields``, default the first row's keys; None as an empty cell), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields or rows[0]), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in writer.fieldnames})
    write_text(path, buffer.getvalue())


# --- output paths -------------------------------------------------------------------------------------


def refuse_file_in_the_way(name: str, value: str | Path, folders: Iterable[Path]) -> None:
    """Refuse ``value`` (given as ``name``: an option, a variable) when one of ``folders``, the folders it needs,
    exists as a file."""
    blocker = next((p for p in folders if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise LikraError(f"{name} {value}: {blocker} is a file, not a folder")


def check_outputs(outputs: Mapping[str, str | Path | None], inputs: Mapping[str, str | Path | None] = {}) -> None:
    """Refuse, before any work, output files that cannot be written where asked: a folder in the way, a file
    where a parent folder should be, two outputs on one path, or an output that would overwrite an input.
    Keys are the options' names (``--out``), as the errors name them."""
    seen: dict[Path, str] = {}
    sources = {Path(p).resolve(): name for name, p in inputs.items() if p is not None}
    for name, value in outputs.items():
        if value is None:
            continue
        path = Path(value).resolve()
        if path.is_dir():
            raise LikraError(f"{name} {value}: is a directory; give a file name")
        refuse_file_in_the_way(name, value, path.parents)
        if path in seen:
            raise LikraError(f"{name} {value}: the same file as {seen[path]}; give each output its own file")
        if path in sources:
            raise LikraError(f"{name} {value}: would overwrite the input {sources[path]}; give another file")
        nearest = next(p for p in path.parents if p.exists())
        if not os.access(nearest, os.W_OK):
            raise LikraError(f"{name} {value}: cannot write in {nearest} (permission denied)")
        seen[path] = name


def check_out_folder(name: str, value: str | Path) -> Path:
    """An output folder: refused when it is a file or lies inside one."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise LikraError(f"{name} {value}: exists and is not a directory")
    refuse_file_in_the_way(name, value, path.resolve().parents)
    return path


# --- claiming a folder --------------------------------------------------------------------------------


def _holder(handle: Any) -> str:
    handle.seek(0)
    try:
        info = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        info = {}
    return f"process {info.get('pid', '?')} on {info.get('host', '?')} (since {info.get('started', '?')})"


def _in_use(name: str, folder: Path, lock: str, handle: Any) -> FolderInUse:
    holder = _holder(handle)
    where = folder if lock == LOCK else folder / lock
    return FolderInUse(f"{name} {where}: in use by {holder}; wait for it or pick another folder", holder)


def check_free(folder: str | Path, name: str = "--out", lock: str = LOCK) -> None:
    """Refuse now, before slower checks and work, a folder that another process holds (``claim`` takes it later;
    not to be called while this process holds it)."""
    path = Path(folder) / lock
    if not path.is_file():
        return
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(name, Path(folder), lock, handle) from None
        fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def claim(folder: str | Path, name: str = "--out", wait: bool = False, lock: str = LOCK) -> Iterator[None]:
    """Hold ``folder``'s lock for the block (the folder is created). Another holder: ``FolderInUse`` naming it,
    or, with ``wait``, block until it is done (for a piece that every process needs, such as base scores).
    ``lock`` names the lock file, for a piece of a folder (one checkpoint's scores) rather than all of it."""
    folder = Path(folder)
    check_out_folder(name, folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / lock).open("a+")
    except OSError as err:
        raise os_error(folder, err, "cannot create the folder") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise _in_use(name, folder, lock, handle) from None
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
