"""Ctrl-C and SIGTERM stop a suite after its last finished run, whatever Lightning does
with the signal, and never in the middle of writing a record."""

from __future__ import annotations

import contextlib
import signal
import threading

from ..training.lightning_compat import SIGNAL_EXITS


class Interrupted(KeyboardInterrupt):
    """The suite was stopped by a signal; `signum` says which (the exit code is 128 + signum)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


class Guard:
    """What interruptible() yields: check() between runs, deferred() around a record's write."""

    def __init__(self):
        self.signum: int | None = None
        self.critical = 0
        self.pending = False

    def handler(self, signum, frame):
        self.signum = signum
        if self.critical:  # a record is being written: finish it, then stop
            self.pending = True
            return
        raise Interrupted(signum)

    def check(self) -> None:
        """Raise Interrupted if a signal came in (e.g. one Lightning turned into a graceful stop):
        the run that was going on when it came is not finished and must not be recorded."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    @contextlib.contextmanager
    def deferred(self):
        """A signal that comes inside the block (a record being written) takes effect after it."""
        self.critical += 1
        try:
            yield
        finally:
            self.critical -= 1
        if not self.critical and self.pending:
            self.pending = False
            raise Interrupted(self.signum)


@contextlib.contextmanager
def interruptible(signals=(signal.SIGINT, signal.SIGTERM)):
    """Turn Ctrl-C and SIGTERM into `Interrupted` (a KeyboardInterrupt) for the block, however
    the code inside handles them, and yield the guard (`guard.check()` between runs).

    Why: Lightning 2.x catches KeyboardInterrupt inside trainer.fit/validate/test
    (trainer/call.py, _call_and_handle_interrupt): it sets SIGINT to SIG_IGN, tears the
    trainer down and calls sys.exit(1); on SIGTERM its loops raise SIGTERMException, a
    SystemExit with code 0 (training/lightning_compat.py, item 4: SIGNAL_EXITS). Either would
    end the suite as a plain exit (1, or even 0) with no resume hint; here a SystemExit that
    follows one of our signals becomes Interrupted, so the caller stops cleanly, the
    interrupted run is not recorded, and the exit code is 128 + signum. A signal that comes
    inside guard.deferred() (a record being written) takes effect after it. Only in the main
    thread (signals cannot be set elsewhere); a signal ignored (SIG_IGN) when the block starts
    stays ignored. Handlers are restored on exit."""
    guard = Guard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    previous = {}
    for s in signals:
        old = signal.getsignal(s)
        if old is signal.SIG_IGN:
            continue
        previous[s] = old
        signal.signal(s, guard.handler)
    try:
        yield guard
    except SIGNAL_EXITS:
        if guard.signum is not None:
            raise Interrupted(guard.signum) from None
        raise
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
