"""The @strategy decorator and the machinery that applies composed strategies to a spec.

A strategy is a function `fn(spec, **params) -> spec`. The decorator records its family,
where it applies (model families), what it owns (a "slot": two strategies that set the
same slot, e.g. two activations, cannot compose) and its typed keyword parameters, which
the suite config may set (`clip_norm: {max_norm: 0.5}`).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, create_model

from ...core.errors import UserError, did_you_mean
from ...core.registry import Registry
from ...core.spec import RunSpec
from ...core.validation import validated

MODEL_FAMILIES = ("mlp", "cnn", "rnn", "transformer")

# The ranges the catalogue's parameters declare most, by name (the params model checks them when
# the suite loads); a parameter with another range, or a plugin's, writes Annotated[...] itself.
NonNegative = Annotated[float, Field(ge=0)]  # a learning rate (0: the task's), a coefficient
Positive = Annotated[float, Field(gt=0)]  # a threshold
Fraction = Annotated[float, Field(ge=0, le=1)]  # a momentum, an EMA weight
Count = Annotated[int, Field(ge=0)]  # warm-up steps
ANY = MODEL_FAMILIES


@dataclass(frozen=True)
class Strategy:
    name: str
    family: str
    fn: Callable[..., RunSpec]
    applies_to: tuple[str, ...]  # model families it makes sense for
    slot: str | None  # what it owns; two strategies with one slot conflict
    defaults: dict  # parameter name -> default value
    params: type[BaseModel]  # the parameters as a strict pydantic model, built from the signature
    # the parameter a tuning protocol's extra trials search (a clipping threshold, a
    # coefficient), in octaves around its value; None: the trials refine the learning rate
    tune: str | None = None

    @property
    def description(self) -> str:
        return (inspect.getdoc(self.fn) or "").split("\n")[0]

    def applies(self, model_family: str) -> bool:
        return model_family in self.applies_to

    def check_params(self, params: dict, where: str) -> dict:
        """Defaults filled in (in the signature's order); a wrong name, type or value is a
        UserError naming the field. An int is taken for a float and becomes one, so 1 and 1.0
        are one run."""
        return validated(self.params, params, where).model_dump()


STRATEGIES: Registry[Strategy] = Registry("strategy")


def strategy(family: str, applies_to: Iterable[str] = ANY, slot: str | None = None, tune: str | None = None):
    """Register `fn(spec, **params)` as a strategy. Every parameter needs a default and a type;
    `tune` names a positive float parameter that a tuning protocol's extra trials search."""

    def register(fn):
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn)  # the plain types (a range's Annotated[...] stripped)
        declared = typing.get_type_hints(fn, include_extras=True)
        names = list(sig.parameters)[1:]
        for n in names:
            if sig.parameters[n].default is inspect.Parameter.empty or n not in hints:
                raise TypeError(f"strategy {fn.__name__}: parameter {n!r} needs a type and a default")
        bad = set(applies_to) - set(MODEL_FAMILIES)
        if bad:
            raise TypeError(f"strategy {fn.__name__}: unknown model families {sorted(bad)}")
        if not inspect.getdoc(fn):
            raise TypeError(f"strategy {fn.__name__}: needs a one-line docstring naming its source")
        if tune is not None and (hints.get(tune) is not float or not sig.parameters[tune].default > 0):
            raise TypeError(
                f"strategy {fn.__name__}: tune={tune!r} must name a float parameter with a positive default"
            )
        STRATEGIES.add(
            fn.__name__,
            Strategy(
                name=fn.__name__,
                family=family,
                fn=fn,
                applies_to=tuple(applies_to),
                slot=slot,
                defaults={n: sig.parameters[n].default for n in names},
                # the parameters' ranges come from their annotations (Annotated[float, Field(gt=0)]);
                # no float parameter takes NaN or infinity
                params=create_model(
                    f"{fn.__name__}_params",
                    __config__=ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False),
                    **{n: (declared[n], sig.parameters[n].default) for n in names},
                ),
                tune=tune,
            ),
        )
        return fn

    return register


@dataclass(frozen=True)
class Arm:
    """One strategy column of the leaderboard: a composition of strategies with parameters."""

    label: str
    names: tuple[str, ...]
    params: dict  # name -> checked params (defaults filled in)


def make_arm(label: str, params: dict | None, where: str) -> Arm:
    """Parse 'a+b' with params: {a_param: v} for a single strategy, {a: {...}, b: {...}} for a composition."""
    names = tuple(n.strip() for n in label.split("+"))
    if any(not n for n in names):
        raise UserError(f"{where}: empty strategy name in {label!r}")
    if len(set(names)) != len(names):
        raise UserError(f"{where}: {label!r} names a strategy twice")
    strategies = [STRATEGIES.get(n) if n in STRATEGIES else _unknown(n, where) for n in names]
    params = params or {}
    if len(names) == 1:
        per_name = {names[0]: params}
    else:
        if not isinstance(params, dict):
            raise UserError(f"{where}: parameters must be a mapping")
        for key in params:
            if key not in names:
                raise UserError(
                    f"{where}: {key!r} is not part of {label!r}; give parameters per strategy, "
                    f"e.g. {{{names[0]}: {{...}}}}"
                )
        per_name = {n: params.get(n) or {} for n in names}
    slots: dict[str, str] = {}
    for s in strategies:
        if s.slot and s.slot in slots:
            raise UserError(f"{where}: {slots[s.slot]!r} and {s.name!r} cannot compose: both set the {s.slot}")
        if s.slot:
            slots[s.slot] = s.name
    checked = {
        s.name: s.check_params(per_name[s.name], f"{where}.{s.name}" if len(names) > 1 else where) for s in strategies
    }
    return Arm(label=label, names=names, params=checked)


def _unknown(name: str, where: str):
    raise UserError(
        f"{where}: unknown strategy {name!r}{did_you_mean(name, STRATEGIES.list())}; "
        "run 'gradbench list' for the catalogue"
    )


def not_applicable(arm: Arm, model_family: str) -> str | None:
    """The reason the arm does not apply to a model family, or None when it does."""
    for n in arm.names:
        s = STRATEGIES.get(n)
        if not s.applies(model_family):
            return f"{n} applies to {'/'.join(s.applies_to)} models, not {model_family}"
    return None


def apply_arm(arm: Arm, spec: RunSpec) -> RunSpec:
    """Apply the arm's strategies in order; the result still carries the base lr and its multiplier."""
    for n in arm.names:
        spec = STRATEGIES.get(n).fn(spec, **arm.params[n])
    return spec.replace(strategy=arm.label, strategy_params=arm.params)
