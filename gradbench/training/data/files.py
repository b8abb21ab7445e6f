"""MNIST (IDX files) and CIFAR-10 (pickled batches) read from torchvision's on-disk layout
(no torchvision needed to read), and a cheap check of which are present."""

from __future__ import annotations

import codecs
import gzip
import pathlib
import pickle
import struct
import zlib

import numpy as np
import torch

from ...core.errors import UserError
from .splits import Splits, make_splits

try:  # numpy >= 2 (and the forward-compat shim in late 1.26)
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - older numpy
    from numpy.core import multiarray as _multiarray

MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------- MNIST (IDX files)


def _mnist_dir(root) -> pathlib.Path:
    return pathlib.Path(root) / "MNIST" / "raw"


def _mnist_missing(root, base: pathlib.Path) -> UserError:
    return UserError(
        f"MNIST not found: looked for {base}[.gz]; lay it out with "
        f"'gradbench data download --data {root}' (needs the 'vision' extra and internet) "
        f"or pass --data DIR / set GRADBENCH_DATA"
    )


def _corrupt(dataset: str, path, why: str, root) -> UserError:
    return UserError(
        f"{dataset} file {path} is unreadable ({_one_line(why)}); delete it and lay {dataset} "
        f"out again with 'gradbench data download --data {root}', or pass --data DIR / set "
        f"GRADBENCH_DATA to a good copy"
    )


def _mnist_paths(root) -> dict[str, pathlib.Path]:
    """The MNIST files that would be read (plain preferred over .gz); UserError if any is missing."""
    paths = {}
    for key, fname in MNIST_FILES.items():
        plain = _mnist_dir(root) / fname
        gz = plain.with_name(fname + ".gz")
        if plain.is_file():
            paths[key] = plain
        elif gz.is_file():
            paths[key] = gz
        else:
            raise _mnist_missing(root, plain)
    return paths


def _idx_header(data: bytes) -> tuple[int, ...]:
    """Dims from an IDX header of unsigned bytes; ValueError when it is not one."""
    if len(data) < 4:
        raise ValueError(f"only {len(data)} bytes, too short for an IDX header")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"bad magic 0x{data[:4].hex()} (expected 0x000008NN: IDX of uint8)")
    if len(data) < 4 + 4 * ndim:
        raise ValueError("truncated IDX header")
    return struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])


def _read_bytes(path: pathlib.Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def read_idx(path) -> np.ndarray:
    """An IDX file of uint8 (plain or .gz) as a numpy array; ValueError/OSError when unreadable."""
    path = pathlib.Path(path)
    try:
        data = _read_bytes(path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"bad gzip stream: {e}") from e
    dims = _idx_header(data)
    offset = 4 + 4 * len(dims)
    expected = offset + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "trailing bytes"
        raise ValueError(f"{what}: {len(data)} bytes, header {dims} says {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _load_idx(path, ndim: int, root) -> np.ndarray:
    try:
        arr = read_idx(path)
    except (OSError, ValueError) as e:
        raise _corrupt("MNIST", path, str(e), root) from None
    if arr.ndim != ndim or (ndim == 3 and arr.shape[1:] != (28, 28)):
        want = "N x 28 x 28 images (magic 0x00000803)" if ndim == 3 else "N labels (magic 0x00000801)"
        raise _corrupt("MNIST", path, f"shape {arr.shape}, expected {want}", root)
    if ndim == 1 and arr.size and arr.max() > 9:
        raise _corrupt("MNIST", path, f"label {int(arr.max())} outside 0..9", root)
    return arr


def load_mnist(root, val_size: int | None = None) -> Splits:
    """MNIST from root/MNIST/raw; val_size=None means min(5000, n_train // 10), i.e. 5000 on the real files."""
    paths = _mnist_paths(root)
    arrays = {k: _load_idx(p, 3 if k.endswith("_x") else 1, root) for k, p in paths.items()}
    for split in ("train", "test"):
        nx, ny = len(arrays[f"{split}_x"]), len(arrays[f"{split}_y"])
        if nx != ny:
            raise _corrupt("MNIST", paths[f"{split}_y"], f"{ny} labels for {nx} images", root)

    def images(a: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(a.astype(np.float32)).unsqueeze(1)
        return x.div_(255).sub_(MNIST_MEAN).div_(MNIST_STD)

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64))

    return make_splits(
        "mnist",
        images(arrays["train_x"]),
        labels(arrays["train_y"]),
        images(arrays["test_x"]),
        labels(arrays["test_y"]),
        val_size,
        10,
    )


# ---------------------------------------------------------------- CIFAR-10 (pickled batches)


def _cifar_dir(root) -> pathlib.Path:
    return pathlib.Path(root) / "cifar-10-batches-py"


def _cifar_paths(root) -> list[pathlib.Path]:
    """The six batch files (five train, then test); UserError naming the first one missing."""
    paths = [_cifar_dir(root) / f for f in CIFAR_TRAIN_FILES + (CIFAR_TEST_FILE,)]
    for p in paths:
        if not p.is_file():
            raise UserError(
                f"CIFAR-10 not found: looked for {p}; lay it out with "
                f"'gradbench data download --data {root}' (needs the 'vision' extra and internet) "
                f"or pass --data DIR / set GRADBENCH_DATA"
            )
    return paths


# Only what a pickled dict of numpy arrays needs: a data file cannot run code when loaded.
_PICKLE_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # bytes pickled by Python 3 at protocol < 3
    **{(m, "_reconstruct"): _multiarray._reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): _multiarray.scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def _load_cifar_batch(path: pathlib.Path, root) -> tuple[np.ndarray, np.ndarray]:
    """(data uint8 [N,3,32,32], labels int64 [N]) from one batch; str or bytes keys."""
    try:
        with open(path, "rb") as f:
            # encoding="bytes": Python 2 str (the original files' keys) stay bytes, not mojibake.
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as e:  # a damaged pickle can raise almost anything
        raise _corrupt("CIFAR-10", path, f"{type(e).__name__}: {e}", root) from None
    if not isinstance(batch, dict):
        raise _corrupt("CIFAR-10", path, f"holds a {type(batch).__name__}, not a dict", root)
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise _corrupt("CIFAR-10", path, f"keys {sorted(map(str, batch))} lack 'data'/'labels'", root)
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise _corrupt("CIFAR-10", path, f"data is {data.dtype} {data.shape}, expected uint8 N x 3072", root)
    if labels.shape != (len(data),) or (labels.size and not (0 <= labels.min() and labels.max() <= 9)):
        raise _corrupt("CIFAR-10", path, f"{labels.shape} labels for {len(data)} images, or outside 0..9", root)
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar10(root, val_size: int | None = None) -> Splits:
    """CIFAR-10 from root/cifar-10-batches-py, x kept uint8; val_size as in load_mnist."""
    paths = _cifar_paths(root)
    train = [_load_cifar_batch(p, root) for p in paths[:-1]]
    test_x, test_y = _load_cifar_batch(paths[-1], root)
    train_x = torch.from_numpy(np.concatenate([x for x, _ in train]))
    train_y = torch.from_numpy(np.concatenate([y for _, y in train]))
    return make_splits("cifar10", train_x, train_y, torch.from_numpy(test_x), torch.from_numpy(test_y), val_size, 10)


def _check_idx_header(path: pathlib.Path, magic: int) -> str:
    """'ok' or 'unreadable: why', reading only the first bytes."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            head = f.read(4)
    except (OSError, EOFError, zlib.error) as e:
        return f"unreadable: {_one_line(e)} ({path.name})"
    if len(head) < 4 or int.from_bytes(head, "big") != magic:
        return f"unreadable: {path.name} has magic 0x{head.hex()}, expected 0x{magic:08x}"
    return "ok"


def _mnist_status(root: pathlib.Path) -> tuple[str, str]:
    try:
        paths = _mnist_paths(root)
    except UserError:
        for fname in MNIST_FILES.values():
            plain = _mnist_dir(root) / fname
            if not plain.is_file() and not plain.with_name(fname + ".gz").is_file():
                return "missing", f"{plain}[.gz]"
    for key, p in paths.items():
        status = _check_idx_header(p, 0x803 if key.endswith("_x") else 0x801)
        if status != "ok":
            return status, str(p)
    return "ok", str(_mnist_dir(root))


def _cifar_status(root: pathlib.Path) -> tuple[str, str]:
    paths = [_cifar_dir(root) / f for f in CIFAR_TRAIN_FILES + (CIFAR_TEST_FILE,)]
    for p in paths:
        if not p.is_file():
            return "missing", str(p)
        if p.stat().st_size == 0:
            return f"unreadable: {p.name} is empty", str(p)
    return "ok", str(_cifar_dir(root))


def describe(root) -> list[tuple[str, str, str]]:
    """(dataset, 'ok' | 'missing' | 'unreadable: why', path looked at) for MNIST, CIFAR-10 and the text.
    Present files are read as a run reads them (a few seconds for CIFAR-10), so "ok" means a
    run will load them: a truncated IDX file or a garbage batch is "unreadable"."""
    from .text import load_fortunes, text_status

    root = pathlib.Path(root).resolve()
    out = []
    for name, status, load in (
        ("mnist", _mnist_status, load_mnist),
        ("cifar10", _cifar_status, load_cifar10),
        ("fortunes", text_status, load_fortunes),
    ):
        state, where = status(root)
        if state == "ok":
            try:
                load(root)
            except UserError as e:
                state = f"unreadable: {_one_line(e)}"
        out.append((name, state, where))
    return out
