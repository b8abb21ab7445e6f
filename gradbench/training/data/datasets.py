"""Datasets by name: where the data root is, and each dataset loaded once per process."""

from __future__ import annotations

import inspect
import os
import pathlib
import threading
from collections.abc import Callable

from ...core.errors import UserError, unknown
from .adding import make_adding
from .files import _cifar_paths, _mnist_paths, load_cifar10, load_mnist
from .recall import make_recall
from .splits import Splits, fingerprint, make_splits
from .text import FOLDER as TEXT_FOLDER
from .text import SOURCE as TEXT_SOURCE
from .text import load_fortunes

DATASETS = ("mnist", "cifar10", "adding", "recall", "fortunes")
GENERATED = {"adding": make_adding, "recall": make_recall}  # drawn from a seed: no files


def resolve_data_root(cli_value: str | None) -> pathlib.Path:
    """--data DIR, else $GRADBENCH_DATA, else ./data, as an absolute path (need not exist)."""
    value = cli_value or os.environ.get("GRADBENCH_DATA") or "data"
    return pathlib.Path(value).expanduser().resolve()


_LOADERS: dict[str, Callable[..., Splits]] = {"mnist": load_mnist, "cifar10": load_cifar10, "fortunes": load_fortunes}
_MEMO: dict[tuple, tuple[tuple, Splits]] = {}
_MEMO_LOCK = threading.Lock()


def _stamp(paths) -> tuple:
    out = []
    for p in paths:
        st = p.stat()
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


def load_dataset(name: str, root: pathlib.Path, **params) -> Splits:
    """The named dataset, memoized per process on (name, root, params, files read) so a suite loads once.

    The returned Splits is shared between callers: treat its tensors as read-only.
    """
    if name not in DATASETS:
        raise unknown("dataset", name, DATASETS)
    fn = GENERATED.get(name) or _LOADERS[name]
    accepted = [p for p in inspect.signature(fn).parameters if p != "root"]
    extra = sorted(set(params) - set(accepted))
    if extra:
        raise UserError(f"dataset {name!r} does not take {', '.join(extra)}; valid parameters: {', '.join(accepted)}")
    if name in GENERATED:
        root_key, paths = None, []  # the data root plays no part
    else:
        root_key = pathlib.Path(root).resolve()
        paths = _paths(name, root_key)
    key = (name, root_key, repr(sorted(params.items())))
    with _MEMO_LOCK:  # concurrent runs of a suite wait for one load instead of each loading
        stamp = _stamp(paths)
        hit = _MEMO.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        splits = fn(**params) if name in GENERATED else fn(root_key, **params)
        _MEMO[key] = (stamp, splits)  # replaces a stale entry: changed files are reloaded
        return splits


def _paths(name: str, root: pathlib.Path) -> list[pathlib.Path]:
    """The files a dataset reads (their stamps keep the memo fresh)."""
    if name == "mnist":
        return list(_mnist_paths(root).values())
    if name == "fortunes":
        source = root / TEXT_FOLDER / TEXT_SOURCE
        return [source] if source.is_file() else []
    return _cifar_paths(root)


def load_task_data(task, root: pathlib.Path, params: dict) -> Splits:
    """A task's data: its named dataset (load_dataset), or a plugin task's data_fn called with
    its parameters, memoized per process like the built-in ones. data_fn returns (train_x,
    train_y, test_x, test_y), and a fixed validation split is carved out of train; or (train_x,
    train_y, val_x, val_y, test_x, test_y) with its own."""
    if task.data_fn is None:
        return load_dataset(task.dataset, root, **params)
    from ...catalogue.data_params import checked_task_data

    params = checked_task_data(task, params)  # typed as the suite checked them
    key = ("plugin task", task.name, task.data_fn, repr(sorted(params.items())))
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
        if hit is not None:
            return hit[1]
        import torch

        with torch.random.fork_rng(devices=[]):  # the same data in every process, even from torch's generator
            torch.manual_seed(0)
            out = task.data_fn(**params)
        num_classes = task.num_outputs if task.loss == "cross_entropy" else None
        if not isinstance(out, (tuple, list)) or len(out) not in (4, 6):
            raise UserError(
                f"task {task.name!r}: data_fn returned {type(out).__name__}; expected 4 tensors (train x, y, "
                "test x, y) or 6 (train, validation, test)"
            )
        if len(out) == 4:
            splits = make_splits(task.name, *out, val_size=None, num_classes=num_classes)
        else:
            splits = _given_splits(task.name, out, num_classes)
        _MEMO[key] = ((), splits)
        return splits


def _given_splits(name: str, out, num_classes) -> Splits:
    keys = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
    parts = dict(zip(keys, out))
    return Splits(
        **parts,
        fingerprint=fingerprint(parts),
        name=name,
        num_classes=num_classes,
        input_shape=tuple(parts["train_x"].shape[1:]),
    )
