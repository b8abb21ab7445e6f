"""Datasets as whole in-memory tensors: MNIST and CIFAR-10 read from torchvision's on-disk
layout (no torchvision needed to read), the adding problem generated, and a DataModule that
batches by index slicing so the data can live on the accelerator."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import inspect
import os
import pathlib
import pickle
import struct
import threading
import zlib
from dataclasses import dataclass
from typing import Callable, Iterator

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError, unknown

try:  # numpy >= 2 (and the forward-compat shim in late 1.26)
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - older numpy
    from numpy.core import multiarray as _multiarray

DATASETS = ("mnist", "cifar10", "adding")

DEFAULT_VAL_SIZE = 5000  # fixed validation examples carved from train (MNIST, CIFAR-10)
VAL_SPLIT_SEED = 0  # independent of the run seed: every run selects models on the same examples

MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
# Per-channel statistics applied per batch to uint8 images, keyed by Splits.name.
NORMALIZE = {"cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def resolve_data_root(cli_value: str | None) -> pathlib.Path:
    """--data DIR, else $GRADBENCH_DATA, else ./data, as an absolute path (need not exist)."""
    value = cli_value or os.environ.get("GRADBENCH_DATA") or "data"
    return pathlib.Path(value).expanduser().resolve()


@dataclass(eq=False, repr=False)  # eq on tensors is ambiguous; repr of tensors is huge
class Splits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    fingerprint: str
    name: str
    num_classes: int | None
    input_shape: tuple

    def __repr__(self) -> str:
        return (
            f"Splits({self.name}: train {len(self.train_x)}, val {len(self.val_x)}, "
            f"test {len(self.test_x)}, input {self.input_shape}, {self.fingerprint[:19]}…)"
        )


def _fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over each tensor's name, dtype, shape and bytes, in the given order."""
    digest = hashlib.sha256()
    for key, t in tensors.items():
        digest.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.contiguous().numpy())  # buffer protocol: no copy
    return "sha256:" + digest.hexdigest()


def _make_splits(name, train_x, train_y, test_x, test_y, val_size, num_classes) -> Splits:
    """Carve the fixed validation split out of train and fingerprint the result."""
    n = len(train_x)
    if val_size is None:
        val_size = min(DEFAULT_VAL_SIZE, n // 10)  # tiny hand-made files still keep most for train
    if not 0 < val_size < n:
        raise UserError(
            f"{name}: val_size={val_size} must be between 1 and {n - 1} "
            f"(the training file has {n} examples); pass a smaller val_size"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
    # Sorted so each part keeps the file's order: the split is a pure choice of examples.
    val_idx, train_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
    parts = {
        "train_x": train_x[train_idx], "train_y": train_y[train_idx],
        "val_x": train_x[val_idx], "val_y": train_y[val_idx],
        "test_x": test_x, "test_y": test_y,
    }
    return Splits(**parts, fingerprint=_fingerprint(parts), name=name,
                  num_classes=num_classes, input_shape=tuple(train_x.shape[1:]))


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

    return _make_splits("mnist", images(arrays["train_x"]), labels(arrays["train_y"]),
                        images(arrays["test_x"]), labels(arrays["test_y"]), val_size, 10)


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
    **{(m, "_reconstruct"): _multiarray._reconstruct
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): _multiarray.scalar
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
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
    return _make_splits("cifar10", train_x, train_y, torch.from_numpy(test_x),
                        torch.from_numpy(test_y), val_size, 10)


# ---------------------------------------------------------------- the adding problem


def make_adding(seq_len: int = 50, n_train: int = 20000, n_val: int = 2000, n_test: int = 2000,
                seed: int = 1234) -> Splits:
    """Hochreiter & Schmidhuber's adding problem: x [N,T,2] (value, marker), y [N,1] = sum of the two marked values."""
    if seq_len < 2:
        raise UserError(f"adding: seq_len={seq_len} is too short; it needs seq_len >= 2 (one marker per half)")
    for key, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if n < 1:
            raise UserError(f"adding: {key}={n} is not a count of examples; set {key} to 1 or more")
    g = torch.Generator().manual_seed(seed)
    half = seq_len // 2

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        values = torch.rand(n, seq_len, generator=g)
        first = torch.randint(0, half, (n,), generator=g)
        second = torch.randint(half, seq_len, (n,), generator=g)
        rows = torch.arange(n)
        markers = torch.zeros(n, seq_len)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        y = (values[rows, first] + values[rows, second]).unsqueeze(1)
        return torch.stack([values, markers], dim=-1), y

    parts = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):  # one stream, fixed order
        parts[f"{split}_x"], parts[f"{split}_y"] = draw(n)
    return Splits(**parts, fingerprint=_fingerprint(parts), name="adding", num_classes=None,
                  input_shape=(seq_len, 2))


# ---------------------------------------------------------------- lookup, memo, status, download

_LOADERS: dict[str, Callable[..., Splits]] = {"mnist": load_mnist, "cifar10": load_cifar10}
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
    fn = make_adding if name == "adding" else _LOADERS[name]
    accepted = [p for p in inspect.signature(fn).parameters if p != "root"]
    extra = sorted(set(params) - set(accepted))
    if extra:
        raise UserError(f"dataset {name!r} does not take {', '.join(extra)}; valid parameters: "
                        f"{', '.join(accepted)}")
    if name == "adding":
        root_key, paths = None, []  # generated: the data root plays no part
    else:
        root_key = pathlib.Path(root).resolve()
        paths = list(_mnist_paths(root_key).values()) if name == "mnist" else _cifar_paths(root_key)
    key = (name, root_key, repr(sorted(params.items())))
    with _MEMO_LOCK:  # concurrent runs of a suite wait for one load instead of each loading
        stamp = _stamp(paths)
        hit = _MEMO.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        splits = fn(**params) if name == "adding" else fn(root_key, **params)
        _MEMO[key] = (stamp, splits)  # replaces a stale entry: changed files are reloaded
        return splits


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
    """(dataset, 'ok' | 'missing' | 'unreadable: why', path looked at) for MNIST and CIFAR-10; cheap."""
    root = pathlib.Path(root).resolve()
    return [("mnist", *_mnist_status(root)), ("cifar10", *_cifar_status(root))]


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
        if name == "adding" or status.get(name) == "ok":  # generated / already there
            continue
        try:
            for train in (True, False):
                classes[name](str(root), train=train, download=True)
        except Exception as e:  # URLError, HTTP errors, bad checksums: all mean "could not fetch"
            raise UserError(
                f"downloading {name} into {root} failed ({type(e).__name__}: {_one_line(e)}); "
                f"check the network, or copy the files there by hand"
            ) from None


# ---------------------------------------------------------------- batching


class _TrainBatches:
    """One epoch per iter(): a fresh permutation from the seeded generator, sliced into batches."""

    def __init__(self, dm: "TensorDataModule", rank: int, world_size: int):
        self.dm, self.rank, self.world_size = dm, rank, world_size
        self.n = len(dm.train_x) // world_size  # examples per rank; equal on every rank

    def __len__(self) -> int:
        return self.n // self.dm.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dm = self.dm
        perm = torch.randperm(len(dm.train_x), generator=dm.generator)
        # Drawn every epoch, used or not, so the permutation stream never depends on augment;
        # a per-epoch augmentation generator also keeps a cut-short epoch from shifting the next.
        aug_seed = int(torch.randint(0, 2**62, (1,), generator=dm.generator))
        aug_gen = torch.Generator().manual_seed(aug_seed)
        # Truncate to a multiple of world_size so every rank runs the same number of steps.
        perm = perm[: self.n * self.world_size][self.rank :: self.world_size]
        dev, bs = dm.train_x.device, dm.batch_size
        perm = perm.to(dev)
        if dm.augment:  # the epoch's crops and flips, drawn batch by batch as augment_batch would, moved once
            draws = [draw_augment(bs, aug_gen) for _ in range(len(self))]
            shifts = [torch.cat(parts).to(dev) for parts in zip(*draws)]
        # everything below stays on the training device: no host round trip per batch
        for i in range(len(self)):
            idx = perm[i * bs : (i + 1) * bs]
            x = dm.train_x.index_select(0, idx)
            if dm.augment:
                x = apply_augment(x, *(t[i * bs : (i + 1) * bs] for t in shifts))
            yield dm.transform(x), dm.train_y.index_select(0, idx)


class _EvalBatches:
    """Sequential batches, last partial one kept."""

    def __init__(self, dm: "TensorDataModule", x: torch.Tensor, y: torch.Tensor):
        self.dm, self.x, self.y = dm, x, y

    def __len__(self) -> int:
        return -(-len(self.x) // self.dm.eval_batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs = self.dm.eval_batch_size
        for i in range(0, len(self.x), bs):
            yield self.dm.transform(self.x[i : i + bs]), self.y[i : i + bs]


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding `pad`) and horizontal flip (p=0.5) of a [B,C,H,W] batch in one gather."""
    return apply_augment(x, *(t.to(x.device) for t in draw_augment(len(x), generator, pad)), pad=pad)


def draw_augment(b: int, generator: torch.Generator, pad: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random part of augment_batch for b images: row shifts, column shifts, flips ([b, 1] each).
    Drawn on the CPU generator, so the result does not depend on the device."""
    dy = torch.randint(0, 2 * pad + 1, (b, 1), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b, 1), generator=generator)
    flip = torch.rand(b, 1, generator=generator) < 0.5
    return dy, dx, flip


def apply_augment(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Crop and flip x by drawn shifts (all on x's device: no host work per batch)."""
    b, c, h, w = x.shape
    dev = x.device
    rows = dy + torch.arange(h, device=dev)
    cols = dx + torch.where(flip, torch.arange(w - 1, -1, -1, device=dev), torch.arange(w, device=dev))
    padded = F.pad(x, (pad, pad, pad, pad))  # zero pixels, as RandomCrop(padding=4) before ToTensor
    return padded[
        torch.arange(b, device=dev)[:, None, None, None],
        torch.arange(c, device=dev)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


class TensorDataModule(pl.LightningDataModule):
    """Whole splits as tensors (moved to the training device once); batches are index slices."""

    def __init__(self, splits: Splits, batch_size: int, seed: int, augment: bool = False,
                 eval_batch_size: int = 1000):
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise UserError(f"batch sizes must be at least 1 (got batch_size={batch_size}, "
                            f"eval_batch_size={eval_batch_size})")
        if batch_size > len(splits.train_x):
            raise UserError(f"batch_size={batch_size} is larger than the {splits.name} training set "
                            f"({len(splits.train_x)} examples); use a smaller batch_size")
        if augment and len(splits.input_shape) != 3:
            raise UserError(f"augment=True needs image data, but {splits.name} has inputs of shape "
                            f"{splits.input_shape}; set augment to false")
        self.splits, self.batch_size, self.eval_batch_size = splits, batch_size, eval_batch_size
        self.augment, self.seed = augment, seed
        self.generator = torch.Generator().manual_seed(seed)  # seeded once: epoch e depends on (seed, e)
        self.num_classes, self.input_shape = splits.num_classes, splits.input_shape
        # Own references: setup() rebinds these, never the (shared, memoized) Splits.
        self._use(torch.device("cpu"))

    def _use(self, device: torch.device) -> None:
        s = self.splits
        self.train_x, self.train_y = s.train_x.to(device), s.train_y.to(device)
        self.val_x, self.val_y = s.val_x.to(device), s.val_y.to(device)
        self.test_x, self.test_y = s.test_x.to(device), s.test_y.to(device)
        self._device = device
        stats = NORMALIZE.get(s.name)
        self._mean = self._std = None
        if stats is not None:
            self._mean = torch.tensor(stats[0], device=device).view(1, -1, 1, 1)
            self._std = torch.tensor(stats[1], device=device).view(1, -1, 1, 1)

    def setup(self, stage: str | None = None) -> None:
        if self.trainer is not None and self.trainer.strategy.root_device != self._device:
            self._use(self.trainer.strategy.root_device)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> normalized float32, per batch; float data passes through."""
        if x.dtype != torch.uint8:
            return x
        x = x.float().div_(255)
        return x.sub_(self._mean).div_(self._std) if self._mean is not None else x

    def train_dataloader(self) -> _TrainBatches:
        rank, world = 0, 1
        if self.trainer is not None and self.trainer.world_size > 1:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        return _TrainBatches(self, rank, world)

    def val_dataloader(self) -> _EvalBatches:
        return _EvalBatches(self, self.val_x, self.val_y)

    def test_dataloader(self) -> _EvalBatches:
        return _EvalBatches(self, self.test_x, self.test_y)

    def state_dict(self) -> dict:
        """The permutation generator's state, so a resumed run continues the same batch order."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
