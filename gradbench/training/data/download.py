"""Fetching MNIST and CIFAR-10 with torchvision (the optional 'vision' extra)."""

from __future__ import annotations

import pathlib

from ...core.errors import UserError, unknown
from .datasets import DATASETS, GENERATED
from .files import _one_line, describe


def download(names: list[str], root) -> None:
    """Fetch MNIST / CIFAR-10 into root with torchvision; datasets already laid out are left alone."""
    for name in names:
        if name not in DATASETS:
            raise unknown("dataset", name, DATASETS)
    try:
        import torchvision.datasets as tvd  # optional: only downloading needs it
    except ImportError:
        raise UserError(
            "downloading needs torchvision, which is not installed; install it with "
            "pip install -c constraints.txt 'gradbench[vision]' (or lay the files out by hand "
            f"under {root})"
        ) from None
    root = pathlib.Path(root)
    status = {d: s for d, s, _ in describe(root)}
    classes = {"mnist": tvd.MNIST, "cifar10": tvd.CIFAR10}
    for name in names:
        if name in GENERATED or status.get(name) == "ok":  # generated / already there
            continue
        try:
            for train in (True, False):
                classes[name](str(root), train=train, download=True)
        except Exception as e:  # URLError, HTTP errors, bad checksums: all mean "could not fetch"
            raise UserError(
                f"downloading {name} into {root} failed ({type(e).__name__}: {_one_line(e)}); "
                f"check the network, or copy the files there by hand"
            ) from None
