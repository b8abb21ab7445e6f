"""One writer per results file: `<results>.lock`, held with flock for a whole suite."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import warnings
from datetime import UTC, datetime
from pathlib import Path

from ..core.errors import UserError
from .jsonl import ResultsWarning, check_regular_file


def lock_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, what: str = "gradbench run"):
    """Hold `<results>.lock` (fcntl.flock, non-blocking) for the whole block, so two suites
    cannot interleave lines in one results file. The lock file says who holds it (pid, host,
    start time), for the error the second process gets. The kernel drops a flock when its
    process dies, so a lock file left by a killed run never blocks: it is simply re-taken.
    The lock file itself stays (removing it would let two processes lock two inodes)."""
    try:
        import fcntl
    except ImportError:  # not POSIX (Windows): no flock, and the user must know it
        warnings.warn(
            f"this platform has no file locks (fcntl), so {path} is not locked; make sure no other "
            "gradbench run writes to it at the same time",
            ResultsWarning,
            stacklevel=3,
        )
        yield
        return
    path = Path(path)
    check_regular_file(path)  # a device or a folder: refused before a lock file is left beside it
    lock = lock_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(
            f"cannot write results to {path}: cannot create its lock file {lock}: {e.strerror or e}"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UserError(
                    f"{path} is in use by {_holder(fd, what)}; wait for it or use another --results"
                ) from None
            # a file system without flock (some network mounts): go on, but say so
            warnings.warn(
                f"cannot lock {lock} ({e.strerror or e}); make sure no other gradbench run "
                f"writes to {path} at the same time",
                ResultsWarning,
                stacklevel=3,
            )
            yield
            return
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "what": what,
            "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        except OSError:
            pass  # the lock holds without the note; a second process just learns less
        try:
            yield
        finally:
            try:
                os.ftruncate(fd, 0)  # no stale holder note once released
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int, what: str) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        return f"{info.get('what') or what} (pid {info['pid']} on {info['host']} since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"another {what} (it has not said which yet)"
