"""Property-based tests (hypothesis) over the two inputs a user hands gradbench, suite files and
results files, and over what a page prints from records. The properties:

* a suite file, however broken or hostile, is read into a suite or refused with exit 2 and one
  short line, never a traceback;
* appending to a results file never loses or changes a finished record (a torn fragment is
  moved to the side file, not dropped);
* the markdown page escapes every field a record carries: no table row breaks, no tag opens.

CI runs the "ci" profile (a few hundred examples in all); HYPOTHESIS_PROFILE=long runs more.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import tempfile
from pathlib import Path

import yaml
from fakes import make_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradbench import cli
from gradbench.analysis import page, scoring
from gradbench.store import jsonl

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# text a hostile user or a broken tool might put anywhere
HOSTILE = st.sampled_from(
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "a|b",
        "line\nbreak",
        "`tick`",
        "``double``",
        "&lt;not a tag&gt;",
        "../../etc/passwd",
        "{{ jinja }}",
        "{% raw %}",
        "\x00\x01",
        "é ñ 漢字",
        "",
        " ",
    ]
)
TEXT = st.one_of(HOSTILE, st.text(max_size=30))
NUMBER = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
LEAF = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
KEYS = st.one_of(
    st.sampled_from(
        ["name", "seeds", "tasks", "strategies", "stress", "protocol", "max_steps", "threads", "trainer", "plugins"]
    ),
    TEXT,
)
VALUES = st.recursive(
    LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12
)
TASKS = st.sampled_from(["mnist_mlp", "adding_rnn", "cifar10_cnn", "recall_transformer", "nope"])
SUITE = st.fixed_dictionaries(
    {"tasks": st.one_of(st.lists(TASKS, max_size=3), VALUES)},
    optional={
        "strategies": st.one_of(
            st.lists(st.sampled_from(["baseline", "clip_norm", "adam", "bogus"]), max_size=3), VALUES
        ),
        "seeds": VALUES,
        "name": VALUES,
        "stress": st.fixed_dictionaries({"lr_mult": st.lists(NUMBER, max_size=3)}),
        "threads": VALUES,
        "max_steps": VALUES,
        "trainer": VALUES,
    },
)


def _status(text: str) -> tuple[int, str]:
    """`gradbench status` on a suite file holding `text` (it reads and checks the suite, and
    trains nothing): the exit code and what it printed on stderr."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = cli.main(["status", str(path), "--results", str(Path(tmp) / "r.jsonl")])
    return rc, err.getvalue()


def _one_clear_line(rc: int, err: str) -> None:
    assert rc in (0, 2), (rc, err)
    if rc == 2:
        assert err.startswith("gradbench: error: ") and err.count("\n") == 1, err
        assert len(err) <= cli.MAX_MESSAGE + 40, len(err)


@given(SUITE)
def test_a_suite_document_is_read_or_refused_in_one_line(doc):
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return
    _one_clear_line(*_status(text))


@given(st.text(max_size=200))
def test_any_text_as_a_suite_file_is_read_or_refused_in_one_line(text):
    _one_clear_line(*_status(text))


# ------------------------------------------------------------------- results files

RECORD_LINES = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=6, unique=True)
ENDING = st.sampled_from(["newline", "no newline", "torn", "zeros"])


@given(RECORD_LINES, ENDING, st.integers(min_value=1, max_value=400))
def test_appending_never_loses_or_changes_a_finished_record(ids, ending, cut):
    lines = [json.dumps(make_record(seed=i % 5, run_id=f"{i:012x}")) for i in ids]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.jsonl"
        body = "\n".join(lines)
        fragment = ""
        if ending == "newline":
            body += "\n"
        elif ending == "torn":
            fragment = json.dumps(make_record(run_id="f" * 12))[: min(cut, 200)]
            body += "\n" + fragment
        elif ending == "zeros":
            fragment = "\x00" * cut
            body += "\n" + fragment
        path.write_text(body, encoding="utf-8")
        new = make_record(run_id="e" * 12)
        with contextlib.suppress(Warning), _no_warnings():
            jsonl.append(path, new)
        kept = path.read_text(encoding="utf-8").splitlines()
        assert kept[: len(lines)] == lines  # every finished record, byte for byte, in order
        assert json.loads(kept[-1])["run_id"] == "e" * 12 and len(kept) == len(lines) + 1
        if fragment:
            assert jsonl.torn_path(path).read_text(encoding="utf-8") == fragment + "\n"


@contextlib.contextmanager
def _no_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@given(st.binary(max_size=300))
def test_any_bytes_as_a_results_file_read_or_refused_cleanly(data):
    from gradbench.core.errors import UserError

    with tempfile.TemporaryDirectory() as tmp, _no_warnings():
        path = Path(tmp) / "r.jsonl"
        path.write_bytes(data)
        try:
            jsonl.read(path)
        except UserError as e:
            assert "\n" not in str(e).strip()


# ------------------------------------------------------------------------ the page

TAG = re.compile(r"<[A-Za-z/!?]")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def _outside_code(line: str) -> str:
    return CODE_SPAN.sub("", line)


def _cells(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


FIELDS = st.fixed_dictionaries(
    {
        "label": TEXT.filter(lambda t: t.strip() != ""),
        "task_name": TEXT.filter(lambda t: t.strip() != ""),
        "metric": TEXT,
        "reason": TEXT,
        "suite": TEXT,
        "command": TEXT,
        "device": TEXT,
        "cpu": TEXT,
        "torch": TEXT,
        "dataset": TEXT,
        "finished": TEXT,
    }
)


@given(FIELDS)
def test_the_markdown_page_escapes_every_field_a_record_carries(f):
    recs = []
    for seed in (0, 1):
        for arm, status in (("baseline", "ok"), (f["label"], "ok"), (f["label"] + "+x", "error")):
            r = make_record(strategy="baseline", seed=seed, status=status, suite=f["suite"], command=f["command"])
            r["strategy"]["label"] = arm
            r["task"] = f["task_name"]
            r["metrics"]["name"] = f["metric"]
            r["reason"] = f["reason"] if status == "error" else None
            r["env"].update(device=f["device"], cpu=f["cpu"], torch=f["torch"])
            r["data"]["dataset"] = f["dataset"]
            r["timings"]["finished_at"] = f["finished"]
            r["run_id"] = f"{seed}{len(recs):011x}"
            recs.append(r)
    text = page.render(recs, scoring.score(recs))
    header = None
    for line in text.splitlines():
        assert not TAG.search(_outside_code(line)), line
        if line.startswith("|"):
            if header is None:
                header = _cells(line)
            assert _cells(line) == header, (line, header)
        else:
            header = None
    assert math.isfinite(len(text))


@settings(max_examples=8)
@given(st.sampled_from(["<script>alert(1)</script>", '<img src=x onerror="alert(1)">']), FIELDS)
def test_the_static_site_escapes_every_field_a_record_carries(payload, f):
    """The site's text and tables (its figures are plotly's JSON): a hostile field never
    appears there as markup."""
    from gradbench.analysis import site

    recs = []
    for seed in (0, 1):
        for arm in ("baseline", payload + f["label"]):
            r = make_record(strategy="baseline", seed=seed, suite=payload, command=payload + f["command"])
            r["strategy"]["label"] = arm
            r["task"] = payload + f["task_name"]
            r["metrics"]["name"] = payload
            r["env"].update(device=payload, cpu=payload)
            r["run_id"] = f"{seed}{len(recs):011x}"
            recs.append(r)
    text = site.render_site(recs, scoring.score(recs), command=payload, results_name=payload)
    assert payload not in text
