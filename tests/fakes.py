"""Writers for small files in the datasets' real on-disk formats, shared by the tests."""

from __future__ import annotations

import gzip
import pathlib
import pickle
import struct

import numpy as np

from gradbench import data


def write_idx(path: pathlib.Path, arr: np.ndarray, gz: bool) -> pathlib.Path:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def make_mnist(root: pathlib.Path, gz: bool, n_train: int = 20, n_test: int = 10) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for key, fname in data.MNIST_FILES.items():
        write_idx(raw / fname, arrays[key], gz)
    return arrays


def make_cifar(root: pathlib.Path, bytes_keys: bool, per_batch: int = 4) -> dict:
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, fname in enumerate(data.CIFAR_TRAIN_FILES + (data.CIFAR_TEST_FILE,)):
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, per_batch)]
        k = (lambda s: s.encode()) if bytes_keys else (lambda s: s)
        with open(folder / fname, "wb") as f:
            pickle.dump({k("batch_label"): k(f"batch {i}"), k("data"): x, k("labels"): y}, f, protocol=2)
        written[fname] = (x, y)
    return written
