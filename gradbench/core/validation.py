"""A pydantic ValidationError as gradbench's one-line message: the field's path, what is
wrong, the valid choices, and 'did you mean' where it helps."""

from __future__ import annotations

import re
import reprlib
import typing

from pydantic import BaseModel, ValidationError

from .errors import UserError, did_you_mean

M = typing.TypeVar("M", bound=BaseModel)

# a value shown in a message: enough to recognise it, never the whole of a huge one
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = _REPR.maxset = 6
_REPR.maxlevel = 2


def shown(value) -> str:
    """repr(value), cut short: a message names a value, it does not reprint a large one."""
    return _REPR.repr(value)


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "literal_error": None,
    "none_required": "null",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
# the parts pydantic adds to an error's location for a member of a Union (not field names)
_UNION_TAG = re.compile(r"^(int|str|float|bool|none|[a-z-]+\[.*\])$")


def validated(model: type[M], value, where: str) -> M:
    """`value` as `model`, or a UserError with one_line's message (the field's path under
    `where`, what is wrong, the valid choices)."""
    try:
        return model.model_validate(value)
    except ValidationError as e:
        raise UserError(one_line(e, where, model)) from None


def one_line(e: ValidationError, where: str, model: type[BaseModel] | None = None) -> str:
    """The most specific error of `e` on one line, its path under `where` (e.g. 'tasks.mnist_mlp.model').
    Where a value failed every member of a Union, the message names what each would take."""
    errors = [(_loc(err), err) for err in e.errors()]
    loc, err = max(errors, key=lambda pair: _depth(pair[1]))  # the deepest: inside the member that fits
    same = [x for lc, x in errors if lc == loc]
    path = _join(where, loc)
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if len(same) > 1 and all(x["type"] in _EXPECTED for x in same):
        wanted = list(dict.fromkeys(_EXPECTED[x["type"]] or _literal(x) for x in same))
        return f"{path}: expected {' or '.join(wanted)}, got {shown(value)}"
    if kind == "extra_forbidden":
        parent = _join(where, loc[:-1])
        valid = _fields(model, loc[:-1])
        hint = did_you_mean(str(loc[-1]), valid) if valid else ""
        return f"{parent + ': ' if parent else ''}unknown key {str(loc[-1])!r}{hint}" + (
            f"; valid: {', '.join(valid)}" if valid else ""
        )
    if kind == "literal_error":
        return f"{path}: {shown(value)} is not one of {ctx.get('expected', '')}"
    if kind == "missing":
        return f"{path}: required"
    positive_int = _is_positive_int(model, loc)
    if kind in _EXPECTED:
        wanted = "a positive integer" if positive_int and kind.startswith("int") else _EXPECTED[kind]
        return f"{path}: expected {wanted}, got {shown(value)}"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "")
        if kind == "greater_than" and bound == 0:
            return f"{path}: must be a positive {'integer' if positive_int else 'number'}, got {shown(value)}"
        return f"{path}: must be {_BOUNDS[kind]} {bound}, got {shown(value)}"
    if kind in ("too_short", "too_long"):
        return f"{path}: must not be empty" if kind == "too_short" and not value else f"{path}: {err['msg']}"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{path}: {msg}"


def _loc(err: dict) -> tuple:
    loc = list(err["loc"])
    if "[key]" in loc:  # a mapping's key itself failed: (..., the key, '[key]') -> the mapping
        loc = loc[: loc.index("[key]") - 1]
    return tuple(p for p in loc if not (isinstance(p, str) and _UNION_TAG.match(p)))  # a Union member's type


def _depth(err: dict) -> int:
    return sum(1 for p in err["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p)))


def _join(where: str, loc: tuple) -> str:
    """'tasks.mnist_mlp.model', 'strategies[0]': keys joined by dots, list positions in brackets."""
    out = where
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _literal(err: dict) -> str:
    return "one of " + str((err.get("ctx") or {}).get("expected", ""))


def _fields(model: type[BaseModel] | None, loc: tuple[str, ...]) -> list[str]:
    """The field names of the (nested) model at `loc`, for 'valid:' lists."""
    for part in loc:
        if model is None:
            return []
        field = model.model_fields.get(part)
        if field is None:  # a mapping's key (a task name): the model found is its values'
            continue
        model = _model_of(field.annotation)
    return [f.alias or name for name, f in model.model_fields.items()] if model is not None else []


def _is_positive_int(model: type[BaseModel] | None, loc: tuple) -> bool:
    """Whether the field at `loc` is an int constrained to > 0 (for 'a positive integer')."""
    if model is None or not loc:
        return False
    *parents, name = loc
    for part in parents:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is not None:
            model = _model_of(field.annotation)
        if model is None:
            return False
    field = model.model_fields.get(name) if isinstance(name, str) else None
    return (
        field is not None
        and any(getattr(m, "gt", None) == 0 for m in field.metadata)
        and "int" in str(field.annotation)
    )


def _model_of(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
