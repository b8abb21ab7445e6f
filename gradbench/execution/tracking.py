"""Weights & Biases tracking through Lightning's WandbLogger: one W&B run per gradbench run,
and one summary run holding the leaderboard tables.

Settings (suite `wandb:` section, or `--wandb`): project (default $WANDB_PROJECT, else
"gradbench"), entity (default $WANDB_ENTITY), mode ("online", "offline" or "auto": online
only when an API key is configured), dir (where run folders go; default beside the results).
With no login it runs offline and the CLI says where the runs are and how to sync them.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from ..core.errors import UserError, one_line_error, warn
from ..core.spec import RunSpec

KEYS = ("project", "entity", "mode", "dir", "tags")


def resolve(settings: dict | None, default_dir: Path) -> dict:
    """Fill the defaults and decide online/offline once, in the driver."""
    settings = dict(settings or {})
    for key in settings:
        if key not in KEYS:
            raise UserError(f"wandb: unknown key {key!r}; valid: {', '.join(KEYS)}")
    mode = settings.get("mode") or os.environ.get("WANDB_MODE") or "auto"
    if mode not in ("online", "offline", "auto", "dryrun", "disabled"):
        raise UserError(f"wandb.mode: {mode!r} is not one of online, offline, auto")
    if mode == "auto":
        mode = "online" if _logged_in() else "offline"
    return {
        "project": settings.get("project") or os.environ.get("WANDB_PROJECT") or "gradbench",
        "entity": settings.get("entity") or os.environ.get("WANDB_ENTITY"),
        "mode": "offline" if mode == "dryrun" else mode,
        "dir": str(Path(settings.get("dir") or default_dir).resolve()),
        "tags": list(settings.get("tags") or []),
    }


def _logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import wandb

        return bool(wandb.Api().api_key)
    except Exception:  # no key, no network: offline
        return False


class RunTracker:
    """The WandbLogger of one run: config = the resolved spec; after the run, the stability
    series (from the run's steps.csv), the validation curve and the final metrics."""

    def __init__(self, settings: dict, spec: RunSpec):
        Path(settings["dir"]).mkdir(parents=True, exist_ok=True)
        self.logger = _safe_wandb_logger(
            name=spec.run_id,
            id=f"{spec.run_id}",
            project=settings["project"],
            entity=settings["entity"],
            save_dir=settings["dir"],
            offline=settings["mode"] == "offline",
            group=spec.suite or None,
            tags=[spec.task, spec.strategy, f"seed{spec.seed}", *settings["tags"]],
            config=spec.to_dict(),
            mode=settings["mode"],
            job_type="run",
            reinit="finish_previous",
            settings=_quiet(),
        )

    def finish(self, record: dict, run_dir: Path | None) -> str | None:
        """Log what the run produced and close the W&B run; returns its local folder."""
        import wandb

        exp = self.logger.experiment
        if run_dir is not None and (run_dir / "steps.csv").exists():
            with open(run_dir / "steps.csv") as fh:
                for row in csv.DictReader(fh):
                    step = int(row.pop("step"))
                    exp.log({f"stability/{k}": _f(v) for k, v in row.items()} | {"trainer/global_step": step})
        for step, value in record["metrics"]["val_curve"]:
            exp.log({f"val/{record['metrics']['name']}": value, "trainer/global_step": step})
        exp.summary.update(
            {
                "status": record["status"],
                "reason": record["reason"],
                **({"copy_of": record["copy_of"]} if record.get("copy_of") else {}),
                **{f"final/{k}": v for k, v in record["metrics"].items() if not isinstance(v, list)},
                **{f"stability/{k}": v for k, v in (record["stability"] or {}).items() if not isinstance(v, list)},
            }
        )
        folder = getattr(exp, "dir", None)
        self.logger.finalize("success" if record["status"] != "error" else "failed")
        wandb.finish(exit_code=1 if record["status"] == "error" else 0)
        return str(Path(folder).parent) if folder else None


def _safe_wandb_logger(**kwargs):
    """Lightning's WandbLogger, except that a failure while it logs (the network, a full disk,
    a W&B bug) is one warning line and the run trains on untracked: tracking copies what the
    record already holds, so it must never make a run an error."""
    from lightning.pytorch.loggers import WandbLogger

    class SafeWandbLogger(WandbLogger):
        _failed = False

        def _guarded(self, call, *args, **kw):
            if self._failed:
                return None
            try:
                return call(*args, **kw)
            except Exception as e:  # noqa: BLE001
                self._failed = True
                why = one_line_error(e, 300)
                warn(f"W&B logging stopped for run {self._name} ({why})")
                return None

        def log_metrics(self, metrics, step=None):
            return self._guarded(super().log_metrics, metrics, step)

        def log_hyperparams(self, params, *args, **kw):
            return self._guarded(super().log_hyperparams, params, *args, **kw)

        def after_save_checkpoint(self, checkpoint_callback):
            return self._guarded(super().after_save_checkpoint, checkpoint_callback)

        def finalize(self, status):
            return self._guarded(super().finalize, status)

    return SafeWandbLogger(**kwargs)


def log_summary(settings: dict, suite: str, scores) -> None:
    """A summary run holding the leaderboard tables as W&B Tables."""
    import wandb

    run = wandb.init(
        project=settings["project"],
        entity=settings["entity"],
        dir=settings["dir"],
        mode=settings["mode"],
        group=suite,
        name=f"{suite}-leaderboard",
        job_type="leaderboard",
        reinit="finish_previous",
        settings=_quiet(),
    )
    run.log(
        {
            "leaderboard/per_task": wandb.Table(*_tabular(scores.per_task)),
            "leaderboard/overall": wandb.Table(*_tabular(scores.overall)),
        }
    )
    run.finish()


def sync_hint(settings: dict) -> str:
    if settings["mode"] != "offline":
        return f"W&B: runs logged to project {settings['project']}"
    return (
        f"W&B (offline, not logged in): runs are in {settings['dir']}/wandb; "
        f"upload them with: wandb sync {settings['dir']}/wandb/offline-run-*"
    )


def _quiet():
    import wandb

    return wandb.Settings(silent=True, console="off", disable_git=True, x_disable_stats=True)


def _tabular(df) -> tuple[list[str], list[list]]:
    """A scores frame as (columns, rows) of JSON-safe values, what wandb.Table takes: a missing
    value (NaN, pd.NA, None) is None, a numpy scalar its Python value, anything else that is not
    a bool, number or string its str. A column is then one type or None, which W&B accepts
    (pd.NA beside numbers made wandb.Table raise 'incompatible types')."""
    import pandas as pd

    df = df.reset_index(drop=False) if df.index.name else df
    return [str(c) for c in df.columns], [[_cell(v, pd) for v in row] for row in df.itertuples(index=False)]


def _cell(v, pd):
    if v is None or (not isinstance(v, (str, list, tuple, dict)) and pd.isna(v)):
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v if isinstance(v, (bool, int, float, str)) else str(v)


def _f(v: str) -> float | None:
    x = float(v)
    return x if math.isfinite(x) else None
