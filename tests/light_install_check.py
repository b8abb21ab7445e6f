"""Run by tests/test_install.py as `python -I -S light_install_check.py SITE WORK`: with only
SITE (the core install) on the path, fit a user's LightningModule with gradbench's monitor
and two gradient callbacks, try a command that needs the [suite] extra, and print one JSON
line of what happened."""

from __future__ import annotations

import sys

site, work = sys.argv[1], sys.argv[2]
sys.path.insert(0, site)
sys.path.insert(1, __file__.rsplit("/", 1)[0])  # user_models beside this file (-I leaves the script's folder out)

import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402

import lightning.pytorch as L  # noqa: E402
import torch  # noqa: E402
from user_models import Regression, regression_data  # noqa: E402

import gradbench  # noqa: E402
from gradbench.callbacks import AutoClip, StabilityMonitor, ZClip  # noqa: E402
from gradbench.cli import main  # noqa: E402

EXTRAS_ONLY = ["pandas", "scipy", "matplotlib", "plotly", "itables", "wandb", "ray"]


torch.manual_seed(0)
loader = regression_data(320)
monitor = StabilityMonitor()
trainer = L.Trainer(
    max_steps=20,
    callbacks=[monitor, ZClip(warmup_steps=5), AutoClip(percentile=25.0)],
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    default_root_dir=work,
)
trainer.fit(Regression(), loader)
series = monitor.series()

err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = main(["leaderboard", f"{work}/results.jsonl", "--out", f"{work}/page"])

print(
    json.dumps(
        {
            "gradbench_from": gradbench.__file__,
            "absent": [m for m in EXTRAS_ONLY if importlib.util.find_spec(m) is None],
            "loaded_extras": sorted({m.split(".")[0] for m in sys.modules} & set(EXTRAS_ONLY)),
            "steps": len(series),
            "grad_norm_max": monitor.summary()["grad_norm_max"],
            "clipped_steps": int((series[:, 2] < series[:, 1] * (1 - 1e-6)).sum()),
            "leaderboard_exit": code,
            "leaderboard_says": err.getvalue(),
        }
    )
)
