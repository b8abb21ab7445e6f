"""What a suite registered before it ran, and what changed after records were seen: two
files saved beside a page, each shown by it. No torch.

* FILE (preregistration.yaml): written and committed before the suite runs, never edited
  after: its settings (tasks, targets, budgets, grids), the seed rule, and a prediction per
  literature claim and cause. The page prints its sha256 and its date, and checks the date
  against the first record's: a file dated after the first record is shown as written after
  the runs began, not as a pre-registration.
* AMENDMENTS (amendments.yaml): each setting changed after records were seen, with its date,
  the values before and after, and the reason. The page lists every one.

Both are YAML read through the suite files' bounded reader (core/yaml_input.py) and checked by a
pydantic model: a bad file is one error naming the field, never a page that leaves it out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from ..core.errors import UserError
from ..core.settings import Strict
from ..core.validation import one_line
from ..core.yaml_input import read_yaml

FILE = "preregistration.yaml"
AMENDMENTS = "amendments.yaml"


class CauseTest(Strict):
    """The fixed rule that reads a prediction's verdict off the stress axes (stress_verdicts.py)."""

    rule: Literal["more", "order", "fewer"] = Field(
        description="more: each arm tolerates more levels than `than` (baseline) on the axis; order: the arms, in "
        "this order, tolerate non-increasing levels and the first more than the last; fewer: the one arm "
        "tolerates fewer levels on the axis than on than_axis"
    )
    axis: str = Field(description="the stress axis the rule reads")
    arms: list[str] = Field(min_length=1, description="the arms it reads")
    than: str = Field(
        "baseline", description="rule more: the arm they are read against (against another than baseline: no test)"
    )
    than_axis: str | None = Field(None, description="rule fewer: the axis it is compared with")
    reading: Literal["tolerance", "learns"] = Field(
        "tolerance", description="tolerance: levels held without explosion; learns: levels at which every seed learned"
    )

    @model_validator(mode="after")
    def _fits_its_rule(self):
        # a registration cannot be edited once records exist: a rule that cannot be read is an error now
        if self.rule == "fewer" and (self.than_axis is None or len(self.arms) != 1):
            raise ValueError("rule fewer reads one arm on two axes: give one arm and than_axis")
        if self.rule == "order" and len(self.arms) < 2:
            raise ValueError("rule order needs at least two arms")
        if self.than != "baseline" and self.rule != "more":
            raise ValueError("than applies to rule more only")
        if self.than_axis is not None and self.rule != "fewer":
            raise ValueError("than_axis applies to rule fewer only")
        return self


class Prediction(Strict):
    claim: str = Field(description="the claim or cause, as the page names it")
    predicted: str = Field(description="what the literature predicts this suite will measure")
    source: str = Field("", description="where the prediction comes from")
    test: CauseTest | None = Field(None, description="a cause's prediction: the rule its verdict is read by")


class Preregistration(Strict):
    """A suite's settings and predictions, written before it runs."""

    date: dt.date = Field(description="the day it was written (YYYY-MM-DD)")
    suite: str = Field(description="the suite file it registers, e.g. configs/protocol_demo.yaml")
    settings: dict[str, str] = Field(
        description="each setting that decides the result, in words: targets, budgets, grids, early stops"
    )
    seed_rule: str = Field(description="how many seeds each comparison gets, decided before any record exists")
    predictions: list[Prediction] = Field(min_length=1, description="one per literature claim or cause tested")


class Amendment(Strict):
    date: dt.date = Field(description="when the setting changed")
    setting: str
    before: str
    after: str
    reason: str = Field(description="why, with the records that were seen")
    commit: str | None = Field(None, description="the commit that made the change")


class Amendments(Strict):
    amendments: list[Amendment] = Field(min_length=1)


def _read(path: Path, model):
    text = path.read_bytes()
    try:
        raw = read_yaml(text.decode("utf-8"), str(path))
        return model.model_validate(raw, strict=False), text
    except (UnicodeDecodeError, ValidationError) as e:
        detail = one_line(e, "", model) if isinstance(e, ValidationError) else "not UTF-8 text"
        raise UserError(f"{path}: {detail}") from None


def saved(out_dir: str | Path) -> dict | None:
    """The pre-registration beside a page as the page shows it: the model, its sha256 and the
    file's name; None when there is none."""
    path = Path(out_dir) / FILE
    if not path.exists():
        return None
    reg, text = _read(path, Preregistration)
    return {"reg": reg, "sha256": hashlib.sha256(text).hexdigest(), "file": FILE}


def saved_amendments(out_dir: str | Path) -> list[Amendment]:
    path = Path(out_dir) / AMENDMENTS
    return _read(path, Amendments)[0].amendments if path.exists() else []


def before_records(reg: Preregistration, first_finished: str | None) -> bool | None:
    """Whether the file is dated no later than the day of the first record (None: no record has
    a date). Days, not times: a file written the morning a suite starts counts as before."""
    if not first_finished:
        return None
    return reg.date <= dt.date.fromisoformat(first_finished[:10])
