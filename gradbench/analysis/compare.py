"""The comparison behind `gradbench verify`: which recorded runs to re-run, and where a fresh
record differs from the recorded one, exactly (execution/verify.py does the re-running)."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field

from ..core.errors import UserError
from ..core.record import steps_to_target
from ..store.jsonl import normalized

METRIC_FIELDS = ("test", "best_val", "final_val", "steps_to_target", "val_curve", "steps")
_MISSING = object()


@dataclass
class Outcome:
    record: dict
    diffs: list = field(default_factory=list)  # [(field, recorded, now)]
    notes: list = field(default_factory=list)
    statistical: bool = False  # judged by STATISTICAL_RULE, not bit for bit

    @property
    def ok(self) -> bool:
        return not self.diffs


def select(
    records: list[dict],
    sample: int | None = None,
    seed: int = 0,
    cpu: str | None = None,
    commit: str | None = None,
) -> list[dict]:
    """The records to re-run, in file order: all that are not skipped, or `sample` of them
    drawn with random.Random(seed) (deterministic). `cpu` ("model (capability)", cpu_kind)
    keeps those recorded on that kind of CPU, `commit` those recorded at a git commit that
    starts with it: one CPU kind's or one day's part of a long suite. A UserError when none
    is left, naming what there is."""
    runs = [r for r in records if r.get("status") != "skipped"]
    for wanted, of, what in ((cpu, cpu_kind, "on the CPU kind"), (commit, _commit, "at git commit")):
        if wanted is None:
            continue
        kept = [r for r in runs if (of(r.get("env") or {}) or "").startswith(wanted)]
        if not kept:
            there = Counter(of(r.get("env") or {}) or "not recorded" for r in runs)
            shown = ", ".join(f"{k} ({n})" for k, n in sorted(there.items()))
            raise UserError(f"no run was recorded {what} {wanted}; the runs were recorded {what}: {shown}")
        runs = kept
    if sample is not None and sample < 1:
        raise UserError(f"--sample: must be a positive integer, got {sample}")
    if sample is None or sample >= len(runs):
        return runs
    chosen = sorted(random.Random(seed).sample(range(len(runs)), sample))
    return [runs[i] for i in chosen]


def cpu_kind(env: dict) -> str | None:
    """A record's kind of CPU, as bit-for-bit reproduction needs it the same: "model (capability)"."""
    return f"{env['cpu']} ({env.get('cpu_capability')})" if env.get("cpu") else None


def _commit(env: dict) -> str | None:
    return env.get("git_commit")


def compare(recorded: dict, now: dict) -> list[tuple[str, object, object]]:
    """The fields where `now` (a fresh record) differs from `recorded`, exactly: leaf paths
    like 'metrics.val_curve[1][1]' with both values. `now` is compared as it would read back
    from the results file (non-finite floats as null, tuples as lists)."""
    now = normalized(now)
    recorded = json.loads(json.dumps(recorded))
    out: list[tuple[str, object, object]] = []
    if recorded.get("status") != now.get("status"):
        out.append(("status", recorded.get("status"), now.get("status")))
    rm, nm = recorded.get("metrics") or {}, now.get("metrics") or {}
    nm = _at_recorded_target(rm, nm)
    for k in METRIC_FIELDS:
        _diff(f"metrics.{k}", rm.get(k, _MISSING), nm.get(k, _MISSING), out)
    _diff("stability", recorded.get("stability", _MISSING), now.get("stability", _MISSING), out)
    _diff(
        "data.fingerprint",
        (recorded.get("data") or {}).get("fingerprint", _MISSING),
        (now.get("data") or {}).get("fingerprint", _MISSING),
        out,
    )
    return out


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


def describe(rec: dict) -> str:
    label = (rec.get("strategy") or {}).get("label", "?")
    lr = (rec.get("stress") or {}).get("lr_mult")
    return f"{rec.get('run_id')} {rec.get('task')} {label} seed {rec.get('seed')}" + (
        f" lr x{lr:g}" if isinstance(lr, (int, float)) else ""
    )


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


def _at_recorded_target(rm: dict, nm: dict) -> dict:
    """`nm` with steps_to_target read off its validation curve at the recorded target, where
    the task's target has moved since: a target is the task's bar, not the run's arithmetic,
    so a re-run is judged on what it trained."""
    target, curve = rm.get("target"), nm.get("val_curve")
    if target is None or target == nm.get("target") or not isinstance(curve, list):
        return nm
    return {**nm, "steps_to_target": steps_to_target(curve, target, nm.get("higher_is_better", True))}


def env_changes(recorded: dict, now: dict) -> list[str]:
    """What differs between the recording environment and this one (explains a difference).
    Records written before gradbench kept the CPU (cpu, cpu_capability) say so."""
    keys = ("torch", "lightning", "device", "cpu", "cpu_capability", "threads", "git_commit")
    return [
        f"recorded with {k} {recorded.get(k, '(not recorded)')}, now {now.get(k)}"
        for k in keys
        if recorded.get(k) != now.get(k)
    ]


# --- verify --statistical: consistent with the seed distribution, not bit for bit -----------
STATISTICAL_RULE = (
    "a re-run is another draw of the same seed's arithmetic on this machine; it is consistent with its "
    "record when it has the recorded status and, for an ok run, its test metric is within tol of the "
    "recorded one, tol = the median over the task's (arm, learning rate) groups of the range of their "
    "recorded seeds' test metrics (how much a run of this task moves when only its draw changes), and "
    "at least 2% of |target - chance|; a run on other data is never consistent"
)


def task_spread(records: list[dict], task: str) -> float:
    """The median, over the task's (arm, lr) groups with two or more ok seeds, of the range of
    their test metrics (0 when no group has two)."""
    groups: dict[tuple, list[float]] = {}
    for r in records:
        test = (r.get("metrics") or {}).get("test")
        if r.get("task") == task and r.get("status") == "ok" and isinstance(test, (int, float)):
            key = ((r.get("strategy") or {}).get("label"), (r.get("stress") or {}).get("lr_mult"))
            groups.setdefault(key, []).append(float(test))
    ranges = sorted(max(v) - min(v) for v in groups.values() if len(v) >= 2)
    if not ranges:
        return 0.0
    mid = len(ranges) // 2
    return ranges[mid] if len(ranges) % 2 else (ranges[mid - 1] + ranges[mid]) / 2


def consistency(rec: dict, now: dict, spread: float) -> tuple[bool, str]:
    """(consistent?, why) of a re-run `now` of `rec` under STATISTICAL_RULE; `spread` is the
    record's task_spread."""
    fingerprints = ((rec.get("data") or {}).get("fingerprint"), (now.get("data") or {}).get("fingerprint"))
    if None not in fingerprints and fingerprints[0] != fingerprints[1]:
        return False, "other data: the data fingerprint differs from the recorded one"
    if now.get("status") != rec.get("status"):
        return False, f"status {rec.get('status')} recorded, {now.get('status')} now"
    if rec.get("status") != "ok":
        return True, f"{rec.get('status')} as recorded"
    m = rec.get("metrics") or {}
    recorded, got = m.get("test"), (now.get("metrics") or {}).get("test")
    if not isinstance(recorded, (int, float)) or not isinstance(got, (int, float)):
        return False, "no test metric to compare"
    tol = max(spread, 0.02 * abs(float(m.get("target") or 0) - float(m.get("chance") or 0)))
    return abs(
        got - recorded
    ) <= tol, f"{m.get('name', 'metric')} {got:.4g} now, {recorded:.4g} recorded, tol {tol:.3g}"
