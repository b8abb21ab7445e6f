#!/usr/bin/env python3
"""The commit-subject rule: a subject of at most 72 characters (the why goes in the body).

  scripts/commit_subject.py FILE      check one message (pre-commit's commit-msg hook)
  scripts/commit_subject.py --history check every commit since the one that brought this rule
                                      (CI: .ci/run), naming each that breaks it

Exit 1 when a subject is too long, with one line per offending commit or message.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MAX_SUBJECT = 72
RULE_FILE = "scripts/commit_subject.py"  # the commit that added this file brought the rule


def subject(message: str) -> str:
    """The first line that is not a git comment (what git log shows as the subject)."""
    for line in message.splitlines():
        if not line.startswith("#"):
            return line.rstrip()
    return ""


def too_long(message: str) -> str | None:
    """Why the message breaks the rule, or None."""
    s = subject(message)
    return f"subject is {len(s)} characters, over {MAX_SUBJECT}: {s[:80]!r}" if len(s) > MAX_SUBJECT else None


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def history() -> list[str]:
    """One line per commit since the rule came (that commit included) whose subject is too long."""
    added = _git("log", "--format=%H %P", "--diff-filter=A", "--", RULE_FILE).splitlines()
    # no such commit (a shallow clone without it), or a root commit: check every commit there is
    has_parent = bool(added) and len(added[-1].split()) > 1
    since = [f"{added[-1].split()[0]}^..HEAD"] if has_parent else ["HEAD"]
    shas = _git("rev-list", *since).split()
    bad = []
    for sha in shas:
        why = too_long(_git("log", "-1", "--format=%B", sha))
        if why:
            bad.append(f"{sha[:8]}: {why}")
    return bad


def main(argv: list[str]) -> int:
    if argv == ["--history"]:
        if _git("rev-parse", "--is-shallow-repository").strip() == "true":
            print("commit subject rule: a shallow clone: only the commits it holds are checked", file=sys.stderr)
        bad = history()
        for line in bad:
            print(f"commit subject rule: {line}", file=sys.stderr)
        return 1 if bad else 0
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    why = too_long(Path(argv[0]).read_text(encoding="utf-8", errors="replace"))
    if why:
        print(f"commit-msg: {why}; put the why and the figures in the body", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
