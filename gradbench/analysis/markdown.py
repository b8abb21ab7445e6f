"""Text from records, made safe for the markdown page. A published page may hold contributed
results, so every field a record carries is escaped where it is printed: a pipe or a newline
cannot break a table row, and no tag reaches a renderer that passes raw HTML through."""

from __future__ import annotations

import html
import re


def one_line(text) -> str:
    return " ".join(str(text).split())


def esc(text) -> str:
    """Plain text: one line, pipes escaped (a table cell), and <, > and & as entities (they
    render as themselves; a tag never opens)."""
    return html.escape(one_line(text), quote=False).replace("|", "\\|")


def code(text) -> str:
    """A code span (— when empty): one line, pipes escaped; the fence is longer than any run of
    backticks in the text, so the text cannot close it (inside a code span a tag is text)."""
    if text is None or text == "":
        return "—"
    t = one_line(text).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", t)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""  # a span that starts or ends with a backtick needs the space
    return f"{fence}{pad}{t}{pad}{fence}"


def codes(values) -> str:
    return ", ".join(code(v) for v in values) or "—"


def table(head: list[str], rows: list) -> str:
    """A markdown table; the cells come escaped."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def generated(start: str, end: str, command: str, lines: list[str]) -> str:
    """A block a command writes into a README: `lines` between the markers, naming the command
    (so a reader edits the code, not the copy)."""
    return "\n".join([start, f"<!-- written by `{command}`: edit the code, not this -->", *lines, end])


def write_between(path, start: str, end: str, block: str) -> bool:
    """Replace the text from the `start` marker to the `end` marker in the file at `path` by
    `block` (which carries the markers); False, writing nothing, when it has no such pair."""
    from pathlib import Path

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(head + block + tail, encoding="utf-8", newline="\n")
    return True
