"""The one exception type for bad user input: the CLI prints it on one line and exits 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
