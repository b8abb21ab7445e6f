"""What gradbench tells a user: bad input is a UserError (the CLI prints it on one line and
exits 2); something worth knowing that stops nothing is a GradbenchWarning, shown as one
'gradbench: warning:' line wherever it is raised (the CLI, a pool worker, a Ray task)."""

from __future__ import annotations

import contextlib
import difflib
import sys
import warnings
from collections.abc import Iterable, Iterator


class UserError(Exception):
    """Bad input (config, data, plugin, results file). The message names the field and the fix."""


class NotApplicable(UserError):
    """A strategy that does not fit a task (a knob its model lacks, a loss it cannot act on):
    expansion records the arm as n/a there with this reason, not as the suite's mistake."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choices, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def unknown(kind: str, name: str, choices: Iterable[str]) -> UserError:
    choices = sorted(choices)
    return UserError(f"unknown {kind} {name!r}{did_you_mean(name, choices)}; valid: {', '.join(choices)}")


def one_line_error(e: BaseException, limit: int = 500) -> str:
    """'TypeError: what it says' on one line, at most `limit` characters: an exception as a
    record's reason or a warning's cause."""
    return " ".join(f"{type(e).__name__}: {e}".split())[:limit]


class GradbenchWarning(UserWarning):
    """Something worth knowing that stops nothing (a torn results line, a tracking failure, an
    old import path): one 'gradbench: warning:' line under one_line_warnings()."""


def warn(message: str, category: type[Warning] = GradbenchWarning) -> None:
    """Issue a gradbench warning (attributed to the caller)."""
    warnings.warn(message, category, stacklevel=2)


_show_original = warnings.showwarning


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """gradbench's own warnings as one 'gradbench: warning:' line; other libraries' warnings
    as Python shows them."""
    if issubclass(category, GradbenchWarning):
        print(f"gradbench: warning: {' '.join(str(message).split())}", file=sys.stderr if file is None else file)
    else:
        _show_original(message, category, filename, lineno, file, line)


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Within the block, every gradbench warning is shown, each as one line (a DeprecationWarning
    of gradbench's too, which Python hides by default outside __main__)."""
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        warnings.simplefilter("always", GradbenchWarning)
        yield
