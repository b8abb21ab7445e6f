"""The comparison behind `gradbench verify`: which recorded runs to re-run, and where a fresh
record differs from the recorded one, exactly (execution/verify.py does the re-running)."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field

from ..core.errors import UserError
from ..core.record import Env, Record, steps_to_target

METRIC_FIELDS = ("test", "best_val", "final_val", "steps_to_target", "val_curve", "steps")
_MISSING = object()


@dataclass
class Outcome:
    record: Record
    diffs: list = field(default_factory=list)  # [(field, recorded, now)]
    notes: list = field(default_factory=list)
    statistical: bool = False  # judged by STATISTICAL_RULE, not bit for bit

    @property
    def ok(self) -> bool:
        return not self.diffs


def select(
    records: list[Record],
    sample: int | None = None,
    seed: int = 0,
    cpu: str | None = None,
    commit: str | None = None,
) -> list[Record]:
    """The records to re-run, in file order: all that are not skipped, or `sample` of them
    drawn with random.Random(seed) (deterministic). `cpu` ("model (capability)", cpu_kind)
    keeps those recorded on that kind of CPU, `commit` those recorded at a git commit that
    starts with it: one CPU kind's or one day's part of a long suite. A UserError when none
    is left, naming what there is."""
    runs = [r for r in records if r.status != "skipped"]
    for wanted, of, what in ((cpu, cpu_kind, "on the CPU kind"), (commit, _commit, "at git commit")):
        if wanted is None:
            continue
        kept = [r for r in runs if (of(r.env) or "").startswith(wanted)]
        if not kept:
            there = Counter(of(r.env) or "not recorded" for r in runs)
            shown = ", ".join(f"{k} ({n})" for k, n in sorted(there.items()))
            raise UserError(f"no run was recorded {what} {wanted}; the runs were recorded {what}: {shown}")
        runs = kept
    if sample is not None and sample < 1:
        raise UserError(f"--sample: must be a positive integer, got {sample}")
    if sample is None or sample >= len(runs):
        return runs
    chosen = sorted(random.Random(seed).sample(range(len(runs)), sample))
    return [runs[i] for i in chosen]


# the clock a model name may end with ("... CPU @ 2.80GHz"): the same kind of CPU at another speed
_CLOCK = re.compile(r"\s*@\s*[\d.]+\s*[GM]Hz\s*$", re.IGNORECASE)


def cpu_kind(env: Env | None) -> str | None:
    """A record's kind of CPU, as bit-for-bit reproduction needs it the same: "model
    (capability)", the model without its clock suffix (the kernels do not depend on it)."""
    if env is None or not env.cpu:
        return None
    return f"{_CLOCK.sub('', env.cpu)} ({env.cpu_capability})"


def _commit(env: Env | None) -> str | None:
    return env.git_commit if env is not None else None


def compare(recorded: Record, now: Record) -> list[tuple[str, object, object]]:
    """The fields where `now` (a fresh record) differs from `recorded`, exactly: leaf paths
    like 'metrics.val_curve[1][1]' with both values, each as the results file holds it (a
    field a record lacks, such as a newer optional one, is '(missing)')."""
    out: list[tuple[str, object, object]] = []
    if recorded.status != now.status:
        out.append(("status", recorded.status, now.status))
    rm, nm = _as_written(recorded.metrics), _at_recorded_target(recorded, now)
    for k in METRIC_FIELDS:
        _diff(f"metrics.{k}", rm[k], nm[k], out)
    _diff("stability", _as_written(recorded.stability), _as_written(now.stability), out)
    _diff("data.fingerprint", recorded.data.fingerprint, now.data.fingerprint, out)
    return out


def _as_written(part):
    """A record's part as its JSON holds it: the fields it was given, None as null."""
    return None if part is None else part.model_dump(mode="json", exclude_unset=True)


def _diff(path: str, a, b, out: list) -> None:
    if a is _MISSING and b is _MISSING:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            _diff(f"{path}.{k}", a.get(k, _MISSING), b.get(k, _MISSING), out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(f"{path}[{i}]", x, y, out)
    elif a is _MISSING or b is _MISSING or a != b or type(a) is not type(b) and not _same_number(a, b):
        out.append((path, a, b))


def _same_number(a, b) -> bool:
    return (
        isinstance(a, (int, float))
        and isinstance(b, (int, float))
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


def _show(v, width: int = 60) -> str:
    if v is _MISSING:
        return "(missing)"
    if isinstance(v, list):
        text = json.dumps(v)
        if len(text) > width:
            text = f"{text[: width - 12]}... ({len(v)} items)"
        return text
    text = repr(v) if isinstance(v, (float, str)) else json.dumps(v)
    return text if len(text) <= width else text[: width - 3] + "..."


def describe(rec: Record) -> str:
    return f"{rec.run_id} {rec.task} {rec.label} seed {rec.seed} lr x{rec.lr_mult:g}"


def format_outcome(o: Outcome, most: int = 3) -> str:
    if o.statistical:
        word = "consistent  " if o.ok else "INCONSISTENT"
        return f"{word} {describe(o.record)}: " + "; ".join(o.notes)
    if o.ok:
        return f"ok       {describe(o.record)}"
    parts = [f"{f}: recorded {_show(a)}, now {_show(b)}" for f, a, b in o.diffs[:most]]
    more = f" (+{len(o.diffs) - most} more)" if len(o.diffs) > most else ""
    notes = f" [{'; '.join(o.notes)}]" if o.notes else ""
    return f"DIFFERS  {describe(o.record)}: " + "; ".join(parts) + more + notes


def _at_recorded_target(recorded: Record, now: Record) -> dict:
    """`now`'s metrics with steps_to_target read off its validation curve at the recorded
    target, where the task's target has moved since: a target is the task's bar, not the run's
    arithmetic, so a re-run is judged on what it trained."""
    nm = _as_written(now.metrics)
    target = recorded.metrics.target
    if target == now.metrics.target:
        return nm
    return {**nm, "steps_to_target": steps_to_target(nm["val_curve"], target, now.metrics.higher_is_better)}


def env_changes(recorded: Env | None, now: Env | None) -> list[str]:
    """What differs between the recording environment and this one (explains a difference).
    Records written before gradbench kept the CPU (cpu, cpu_capability) say so."""
    keys = ("torch", "lightning", "device", "cpu", "cpu_capability", "threads", "git_commit")
    old, new = (env.model_dump(exclude_unset=True) if env is not None else {} for env in (recorded, now))
    return [
        f"recorded with {k} {old.get(k, '(not recorded)')}, now {new.get(k)}" for k in keys if old.get(k) != new.get(k)
    ]


# --- verify --statistical: consistent with the seed distribution, not bit for bit -----------
STATISTICAL_RULE = (
    "a re-run is another draw of the same seed's arithmetic on this machine; it is consistent with its "
    "record when it has the recorded status and, for an ok run, its test metric is within tol of the "
    "recorded one, tol = the median over the task's (arm, learning rate) groups of the range of their "
    "recorded seeds' test metrics (how much a run of this task moves when only its draw changes), and "
    "at least 2% of |target - chance|; a run on other data is never consistent"
)


def task_spread(records: list[Record], task: str) -> float:
    """The median, over the task's (arm, lr) groups with two or more ok seeds, of the range of
    their test metrics (0 when no group has two)."""
    groups: dict[tuple, list[float]] = {}
    for r in records:
        if r.task == task and r.status == "ok" and r.metrics.test is not None:
            groups.setdefault((r.label, r.lr_mult), []).append(float(r.metrics.test))
    ranges = sorted(max(v) - min(v) for v in groups.values() if len(v) >= 2)
    if not ranges:
        return 0.0
    mid = len(ranges) // 2
    return ranges[mid] if len(ranges) % 2 else (ranges[mid - 1] + ranges[mid]) / 2


def consistency(rec: Record, now: Record, spread: float) -> tuple[bool, str]:
    """(consistent?, why) of a re-run `now` of `rec` under STATISTICAL_RULE; `spread` is the
    record's task_spread."""
    fingerprints = (rec.data.fingerprint, now.data.fingerprint)
    if None not in fingerprints and fingerprints[0] != fingerprints[1]:
        return False, "other data: the data fingerprint differs from the recorded one"
    if now.status != rec.status:
        return False, f"status {rec.status} recorded, {now.status} now"
    if rec.status != "ok":
        return True, f"{rec.status} as recorded"
    m = rec.metrics
    recorded, got = m.test, now.metrics.test
    if recorded is None or got is None:
        return False, "no test metric to compare"
    tol = max(spread, 0.02 * abs(m.target - m.chance))
    return abs(got - recorded) <= tol, f"{m.name} {got:.4g} now, {recorded:.4g} recorded, tol {tol:.3g}"
