"""The results file: one JSON object per finished run, appended, fsynced, resumable.

This file is the only boundary between training and scoring: store/ imports neither torch
nor lightning, so a leaderboard can be rebuilt anywhere from a committed results file.

Each line is one run's record; its fields are the typed `Record` of core/record.py, and
every line read is checked against it, so scoring and the page only see records of that shape.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..core.errors import GradbenchWarning, UserError
from ..core.numerics import NUMERICS, numerics_of
from ..core.record import Record, check_record, latest, parse_record


def append(path: str | os.PathLike, record: dict) -> None:
    """Append one record as one line, flushed and fsynced before returning, so a finished
    run survives a crash or kill -9 of the suite that follows it.

    If the write fails (no space left, read-only file system, I/O error), the file is cut back
    to its size before the write, so no partial line survives and nothing already in it is
    changed, and a UserError names the file and the cause. Non-finite floats are written as
    null (JSON has no NaN; a diverged run's curve may hold one). The suite runner holds back
    a Ctrl-C that arrives while the line is written until it is on disk
    (execution/interrupts.py)."""
    path = Path(path)
    line = (encode(record) + "\n").encode("utf-8")
    check_regular_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(f"cannot write results to {path}: {e.strerror or e}") from None
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException as e:
            undone = _truncate(fd, size)
            if not isinstance(e, OSError):
                raise
            raise UserError(
                f"cannot write results to {path}: {e.strerror or e}"
                + (
                    ""
                    if undone
                    else f" (and cutting it back to {size} bytes failed too: remove its incomplete last line by hand)"
                )
                + "; the runs already in it are intact: free space or fix the "
                "file's permissions, then run the same command again to resume"
            ) from None
    finally:
        os.close(fd)


def check_regular_file(path: Path) -> None:
    """A results file is a plain file (or none yet): a folder, a device (/dev/full reads zeros
    forever) or a pipe is refused before it is read, written or locked."""
    if not path.exists():
        return
    if path.is_dir():
        raise UserError(f"results file {path} is a directory; pass a .jsonl file")
    if not path.is_file():
        raise UserError(f"results file {path} is not a regular file (a device or a pipe?); pass a .jsonl file")


def encode(record: dict) -> str:
    """The record as its one JSON line (no newline): keys sorted, non-finite floats as null."""
    return json.dumps(_jsonable(record), sort_keys=True, allow_nan=False, default=_default)


def normalized(record: dict) -> dict:
    """The record as it reads back from the file (what append + iter_records give)."""
    return json.loads(encode(record))


def _truncate(fd: int, size: int) -> bool:
    """Cut the file back to `size` bytes (undo a partial write); True when that worked."""
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
        return True
    except OSError:
        return False


def _jsonable(x):
    """Non-finite floats -> None (JSON has no NaN/inf), recursively; everything else as is."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _default(x):
    """numpy / torch scalars and paths, which a strategy or monitor may leave in a record."""
    if hasattr(x, "item"):
        try:
            return _jsonable(x.item())
        except (TypeError, ValueError):
            pass
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return str(x)  # never lose a finished run over an odd value in its record


def _drop_torn_tail(path: Path) -> None:
    """Make the file end on a clean line before a record is appended. A last line without a
    newline that is a complete record (an editor or json.dump left the newline off) is kept:
    its newline is added. A partial one (a run killed mid-write, the zeros a power cut
    leaves) is set aside in `<file>.torn`, never deleted, then cut, and its run runs again. A
    last line that is neither is a UserError: this is not a results file."""
    try:
        with open(path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            tail = min(size, 1 << 20)
            fh.seek(size - tail)
            chunk = fh.read(tail)
            cut = chunk.rfind(b"\n")
            if cut < 0 and tail < size:
                raise UserError(
                    f"{path}: its last line is over 1 MiB without a newline; "
                    "not a JSON-lines results file written by gradbench"
                )
            fragment = chunk[cut + 1 :]
            if _is_record(fragment):
                fh.write(b"\n")
            elif _looks_torn(fragment):
                _set_aside(path, fragment)
                fh.truncate(size - len(fragment))
            else:
                lineno = _count_lines(path)
                raise UserError(
                    f"{path}:{lineno}: not a JSON-lines results file (the last line is not a "
                    "run record); pass a results file written by gradbench, or a new path"
                )
            fh.flush()
            os.fsync(fh.fileno())
    except FileNotFoundError:
        return


def _record_object(line: bytes) -> dict:
    """The line's JSON object, a finished run's record (one with a run_id), newline or not;
    ValueError (or UnicodeDecodeError) when it is not one."""
    rec = json.loads(line)
    if not isinstance(rec, dict) or not isinstance(rec.get("run_id"), str):
        raise ValueError("not a run record: a JSON object with a run_id")
    return rec


def _is_record(line: bytes) -> bool:
    try:
        _record_object(line)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def torn_path(path: Path) -> Path:
    """Where the torn last lines of a results file are kept: beside it, `<name>.torn`."""
    return path.with_name(path.name + ".torn")


def _set_aside(path: Path, fragment: bytes) -> None:
    """Append a torn fragment to the side file (one per line, as it was), fsynced before the
    results file is cut, so nothing written is ever lost."""
    side = torn_path(path)
    with open(side, "ab") as fh:
        fh.write(fragment.rstrip(b"\n") + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    warnings.warn(
        f"{path}: moved the cut-off fragment of its last line ({len(fragment)} bytes) to {side} before appending",
        TornLineWarning,
        stacklevel=4,
    )


def _looks_torn(fragment: bytes) -> bool:
    """A record cut off while written: the start of a JSON object, or the zero bytes a file
    system may leave past the last fsync after a power cut."""
    frag = fragment.strip()
    return not frag or frag.startswith(b"{") or not frag.strip(b"\x00")


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return fh.read().count(b"\n") + 1


class ResultsWarning(GradbenchWarning):
    """Something about the results file worth knowing (the CLI prints it as one
    'gradbench: warning:' line)."""


class TornLineWarning(ResultsWarning):
    """A torn last line was ignored; its run runs again."""


def iter_records(path: str | os.PathLike) -> Iterator[dict]:
    """Yield the records of a JSON-lines results file, as dicts (what the runner edits and
    appends again).

    A torn last line (a run killed mid-write: no newline, the start of a JSON object) is
    reported as a TornLineWarning and skipped, so its run runs again; any other line that is
    not a run record (core/record.py) is a UserError naming the file, the line and the field.
    """
    for where, rec in _lines(path):
        yield check_record(rec, where)


def load(path: str | os.PathLike) -> list[dict]:
    return list(iter_records(path))


def read(path: str | os.PathLike) -> list[Record]:
    """The records of a results file, typed (core/record.py's Record), each line checked once:
    what analysis reads."""
    return [parse_record(rec, where) for where, rec in _lines(path)]


def _lines(path: str | os.PathLike) -> Iterator[tuple[str, dict]]:
    """('file:line', the JSON object) for each record line; see iter_records."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"results file {path} does not exist")
    check_regular_file(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise UserError(f"cannot read results file {path}: {e.strerror or e}") from None
    lines = data.split(b"\n")
    torn_ok = not data.endswith(b"\n")  # only an unterminated last line can be torn
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    for i, raw in enumerate(lines[: last + 1]):
        if not raw.strip():
            continue
        try:
            rec = _record_object(raw)
        except (ValueError, UnicodeDecodeError) as e:
            if i == last and torn_ok and _looks_torn(raw):
                warnings.warn(
                    f"{path}:{i + 1}: ignoring a torn last line (a run cut off while writing); its run will run again",
                    TornLineWarning,
                    stacklevel=2,
                )
                continue
            why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise UserError(
                f"{path}:{i + 1}: not a JSON-lines results file ({why}); pass a results "
                "file written by gradbench, or a new path"
            ) from None
        yield f"{path}:{i + 1}", rec


def finished_ids(records: Iterable[dict], retry_errors: bool = False) -> set[str]:
    """run_ids whose latest record was made under this training code's numerics version (any
    status; with retry_errors, not 'error'): a rerun of the suite skips them, and re-runs those
    made under another version (and, asked to, those that failed)."""
    return {
        r["run_id"]
        for r in latest_by_run(records)
        if numerics_of(r) == NUMERICS and not (retry_errors and r["status"] == "error")
    }


def latest_by_run(records: Iterable[dict]) -> list[dict]:
    """One record per run_id (the last one written), in first-seen order (core.record.latest)."""
    return latest(records)
