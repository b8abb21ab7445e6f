"""gradbench.training.data on small files written in the real formats (no real datasets needed)."""

from __future__ import annotations

import os
import pathlib
import pickle
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from fakes import make_cifar, make_mnist, write_idx  # noqa: F401  (the real formats, written small)

from gradbench.core.errors import UserError
from gradbench.training import data
from gradbench.training.data import Splits, TensorDataModule

REPO = pathlib.Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- writers for the real formats


def tiny_splits(n_train=40, n_val=7, n_test=5, image=True) -> Splits:
    g = torch.Generator().manual_seed(3)
    shape = (3, 32, 32) if image else (6, 2)

    def x(n):
        if image:
            return torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
        return torch.rand(n, *shape, generator=g)

    return Splits(
        x(n_train),
        torch.arange(n_train),
        x(n_val),
        torch.arange(n_val),
        x(n_test),
        torch.arange(n_test),
        fingerprint="sha256:test",
        name="cifar10" if image else "adding",
        num_classes=10 if image else None,
        input_shape=shape,
    )


def epoch_labels(dm: TensorDataModule, epochs: int = 2) -> list[list[int]]:
    loader = dm.train_dataloader()
    return [torch.cat([y for _, y in loader]).tolist() for _ in range(epochs)]


# ---------------------------------------------------------------- MNIST


def test_mnist_gz_and_plain_give_identical_tensors_and_fingerprint(tmp_path):
    raw = make_mnist(tmp_path / "plain", gz=False)
    make_mnist(tmp_path / "gz", gz=True)
    a = data.load_mnist(tmp_path / "plain")
    b = data.load_mnist(tmp_path / "gz")
    for field in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.fingerprint == b.fingerprint and a.fingerprint.startswith("sha256:")
    assert (len(a.train_x), len(a.val_x), len(a.test_x)) == (18, 2, 10)  # val = 20 // 10
    assert a.train_x.shape[1:] == (1, 28, 28) and a.train_x.dtype == torch.float32
    assert a.train_y.dtype == torch.int64 and a.num_classes == 10 and a.input_shape == (1, 28, 28)
    # Normalization undoes to the raw test pixels (the test set is the file as is).
    pixels = (a.test_x[:, 0] * data.MNIST_STD + data.MNIST_MEAN) * 255
    assert torch.allclose(pixels, torch.from_numpy(raw["test_x"]).float(), atol=1e-3)
    # Train and val partition the training file.
    labels = sorted(a.train_y.tolist() + a.val_y.tolist())
    assert labels == sorted(raw["train_y"].tolist())


def test_mnist_val_size_keyword_and_its_bounds(tmp_path):
    make_mnist(tmp_path, gz=False)
    assert len(data.load_mnist(tmp_path, val_size=5).val_x) == 5
    with pytest.raises(UserError, match="val_size=20"):
        data.load_mnist(tmp_path, val_size=20)


def test_mnist_prefers_plain_over_gz(tmp_path):
    make_mnist(tmp_path, gz=False)
    raw = tmp_path / "MNIST" / "raw"
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    assert len(data.load_mnist(tmp_path).train_x) == 18


@pytest.mark.parametrize(
    "fname, damage",
    [
        ("train-images-idx3-ubyte", lambda b: b[:-100]),  # truncated
        ("train-images-idx3-ubyte", lambda b: b + b"\0"),  # trailing bytes
        ("t10k-labels-idx1-ubyte", lambda b: b"\x00\x00\x09\x01" + b[4:]),  # bad magic
        ("t10k-labels-idx1-ubyte", lambda b: b[:8] + b"\xff" * (len(b) - 8)),  # label 255
        ("train-labels-idx1-ubyte", lambda b: b[:7] + b"\x13" + b[8:-1]),  # 19 labels, 20 images
    ],
)
def test_mnist_corrupt_file_names_the_file(tmp_path, fname, damage):
    make_mnist(tmp_path, gz=False)
    path = tmp_path / "MNIST" / "raw" / fname
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UserError) as e:
        data.load_mnist(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "MNIST" in msg and "gradbench data download" in msg
    assert fname in msg


def test_mnist_truncated_gz_names_the_file(tmp_path):
    make_mnist(tmp_path, gz=True)
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte.gz"):
        data.load_mnist(tmp_path)


def test_missing_data_says_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(UserError) as e:
        data.load_mnist(tmp_path)
    msg = str(e.value)
    assert msg.startswith("MNIST not found: looked for ")
    assert str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte") + "[.gz]" in msg
    assert "gradbench data download --data" in msg and "GRADBENCH_DATA" in msg and "\n" not in msg
    with pytest.raises(UserError, match="CIFAR-10 not found: looked for .*data_batch_1"):
        data.load_cifar10(tmp_path)


# ---------------------------------------------------------------- CIFAR-10


def test_cifar_str_and_bytes_keys_load_the_same(tmp_path):
    written = make_cifar(tmp_path / "s", bytes_keys=False)
    make_cifar(tmp_path / "b", bytes_keys=True)
    a = data.load_cifar10(tmp_path / "s")
    b = data.load_cifar10(tmp_path / "b")
    assert a.fingerprint == b.fingerprint
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert (len(a.train_x), len(a.val_x), len(a.test_x)) == (18, 2, 4)
    assert a.train_x.dtype == torch.uint8 and a.train_x.shape[1:] == (3, 32, 32)
    assert a.input_shape == (3, 32, 32) and a.test_y.dtype == torch.int64
    # CHW row-major: pixel (c, h, w) of row n is data[n, c*1024 + h*32 + w].
    x, y = written["test_batch"]
    assert a.test_x[1, 2, 5, 7] == x[1, 2 * 1024 + 5 * 32 + 7]
    assert a.test_y.tolist() == y


def test_cifar_corrupt_pickle_names_the_file(tmp_path):
    make_cifar(tmp_path, bytes_keys=True)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UserError, match="data_batch_3") as e:
        data.load_cifar10(tmp_path)
    assert "\n" not in str(e.value)


def test_cifar_pickle_cannot_run_code(tmp_path):
    make_cifar(tmp_path, bytes_keys=False)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(UserError, match="test_batch.*refusing to load"):
        data.load_cifar10(tmp_path)
    assert not marker.exists()


def test_cifar_wrong_shape_is_reported(tmp_path):
    make_cifar(tmp_path, bytes_keys=False)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "wb") as f:
        pickle.dump({"data": np.zeros((4, 100), np.uint8), "labels": [0, 1, 2, 3]}, f)
    with pytest.raises(UserError, match="data_batch_2.*uint8 N x 3072"):
        data.load_cifar10(tmp_path)


# ---------------------------------------------------------------- root, describe, download


def test_resolve_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRADBENCH_DATA", raising=False)
    assert data.resolve_data_root(None) == tmp_path.resolve() / "data"
    monkeypatch.setenv("GRADBENCH_DATA", "envdir")
    assert data.resolve_data_root(None) == tmp_path.resolve() / "envdir"
    assert data.resolve_data_root("/abs/cli") == pathlib.Path("/abs/cli")
    assert data.resolve_data_root("rel").is_absolute()


def test_describe_reports_ok_missing_and_unreadable(tmp_path):
    assert [(d, s) for d, s, _ in data.describe(tmp_path)] == [
        ("mnist", "missing"),
        ("cifar10", "missing"),
        ("fortunes", "missing"),
    ]
    make_mnist(tmp_path, gz=True)
    make_cifar(tmp_path, bytes_keys=True)
    rows = data.describe(tmp_path)
    assert [(d, s) for d, s, _ in rows] == [("mnist", "ok"), ("cifar10", "ok"), ("fortunes", "missing")]
    assert rows[1][2] == str(tmp_path.resolve() / "cifar-10-batches-py")
    (tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"")
    (mnist, status, path), (_, cstatus, _), _ = data.describe(tmp_path)
    assert status.startswith("unreadable:") and path.endswith("train-labels-idx1-ubyte.gz")
    assert cstatus.startswith("unreadable:")


def test_data_status_reads_the_files_as_a_run_does(tmp_path):
    """A truncated MNIST file with a valid header, and a CIFAR batch that unpickles to garbage,
    passed the header check but not the loader; `gradbench data` now says what a run would."""
    import pickle

    from gradbench import cli

    make_mnist(tmp_path, gz=False)
    make_cifar(tmp_path, bytes_keys=True)
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:100])  # the magic and sizes, then cut
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({"data": "garbage", "labels": 3}))
    rows = {d: s for d, s, _ in data.describe(tmp_path)}
    assert rows["mnist"].startswith("unreadable:") and rows["cifar10"].startswith("unreadable:"), rows
    assert cli.main(["data", "--data", str(tmp_path)]) == 1


def test_download_without_torchvision_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(UserError, match=r"pip install -c constraints.txt 'gradbench\[vision\]'"):
        data.download(["mnist"], tmp_path)
    with pytest.raises(UserError, match="valid: adding, cifar10, fortunes, mnist"):
        data.download(["imagenet"], tmp_path)


def test_download_network_error_becomes_user_error(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("Name or service not known\nsecond line")

    fake = SimpleNamespace(MNIST=fail, CIFAR10=fail)
    monkeypatch.setitem(sys.modules, "torchvision", SimpleNamespace(datasets=fake))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    with pytest.raises(UserError, match="downloading cifar10 .* Name or service not known second line") as e:
        data.download(["cifar10"], tmp_path)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- load_dataset


def test_load_dataset_memoizes_and_reloads_changed_files(tmp_path):
    make_mnist(tmp_path, gz=False)
    a = data.load_dataset("mnist", tmp_path)
    assert data.load_dataset("mnist", tmp_path) is a
    assert data.load_dataset("mnist", tmp_path, val_size=3) is not a
    path = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert data.load_dataset("mnist", tmp_path) is not a
    adding = data.load_dataset("adding", tmp_path, seq_len=8, n_train=10, n_val=2, n_test=2)
    assert data.load_dataset("adding", tmp_path / "x", seq_len=8, n_train=10, n_val=2, n_test=2) is adding


def test_load_dataset_rejects_unknown_names_and_params(tmp_path):
    with pytest.raises(UserError, match="valid: adding, cifar10, fortunes, mnist"):
        data.load_dataset("minst", tmp_path)
    with pytest.raises(UserError, match="'mnist' does not take seq_len; valid parameters: val_size"):
        data.load_dataset("mnist", tmp_path, seq_len=3)


# ---------------------------------------------------------------- adding problem


def test_adding_problem_is_deterministic_with_correct_markers_and_targets():
    a = data.make_adding(seq_len=11, n_train=50, n_val=7, n_test=9, seed=5)
    b = data.make_adding(seq_len=11, n_train=50, n_val=7, n_test=9, seed=5)
    c = data.make_adding(seq_len=11, n_train=50, n_val=7, n_test=9, seed=6)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert torch.equal(a.train_x, b.train_x) and not torch.equal(a.train_x, c.train_x)
    assert a.name == "adding" and a.num_classes is None and a.input_shape == (11, 2)
    for x, y, n in ((a.train_x, a.train_y, 50), (a.val_x, a.val_y, 7), (a.test_x, a.test_y, 9)):
        assert x.shape == (n, 11, 2) and y.shape == (n, 1) and x.dtype == y.dtype == torch.float32
        values, markers = x[..., 0], x[..., 1]
        assert ((values >= 0) & (values < 1)).all()
        assert set(markers.unique().tolist()) <= {0.0, 1.0}
        assert (markers[:, :5].sum(1) == 1).all() and (markers[:, 5:].sum(1) == 1).all()  # T//2 = 5
        assert torch.allclose((values * markers).sum(1, keepdim=True), y)
    with pytest.raises(UserError, match="seq_len"):
        data.make_adding(seq_len=1)


# ---------------------------------------------------------------- TensorDataModule


def test_batch_order_depends_only_on_the_seed():
    splits = tiny_splits()
    a = epoch_labels(TensorDataModule(splits, batch_size=8, seed=1))
    b = epoch_labels(TensorDataModule(splits, batch_size=8, seed=1, eval_batch_size=3))
    c = epoch_labels(TensorDataModule(splits, batch_size=8, seed=2))
    augmented = epoch_labels(TensorDataModule(splits, batch_size=8, seed=1, augment=True))
    assert a == b == augmented  # paired seeds: augmenting does not shift the order
    assert a != c and a[0] != a[1]  # fresh permutation each epoch
    assert len(TensorDataModule(splits, 8, 1).train_dataloader()) == 5 == len(a[0]) // 8
    assert len(set(a[0])) == 40  # one epoch: each example at most once (40 = 5 * 8, none dropped)


def test_batch_order_survives_a_cut_short_epoch_and_a_resume():
    splits = tiny_splits()
    full = epoch_labels(TensorDataModule(splits, 8, seed=4, augment=True), epochs=2)
    dm = TensorDataModule(splits, 8, seed=4, augment=True)
    loader = dm.train_dataloader()
    next(iter(loader))  # an epoch stopped after one batch
    state = dm.state_dict()
    assert torch.cat([y for _, y in loader]).tolist() == full[1]
    resumed = TensorDataModule(splits, 8, seed=99)
    resumed.load_state_dict(state)
    assert epoch_labels(resumed, epochs=1)[0] == full[1]


def test_distributed_ranks_take_disjoint_shares_of_one_order():
    splits = tiny_splits(n_train=41)
    single = TensorDataModule(splits, 4, seed=7)
    perm = torch.randperm(41, generator=torch.Generator().manual_seed(7))
    assert torch.cat([y for _, y in single.train_dataloader()]).tolist() == perm[:40].tolist()
    shares = []
    for rank in range(2):
        dm = TensorDataModule(splits, 4, seed=7)
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        loader = dm.train_dataloader()
        assert len(loader) == 5  # 20 examples per rank (41 truncated to 40)
        shares.append(torch.cat([y for _, y in loader]).tolist())
    assert shares[0] == perm[:40:2].tolist() and shares[1] == perm[1:40:2].tolist()


def test_eval_batches_cover_every_example_once_in_order():
    splits = tiny_splits(n_val=7, n_test=5)
    dm = TensorDataModule(splits, batch_size=8, seed=0, augment=True, eval_batch_size=3)
    val = list(dm.val_dataloader())
    assert len(dm.val_dataloader()) == 3 and [len(y) for _, y in val] == [3, 3, 1]
    assert torch.cat([y for _, y in val]).tolist() == list(range(7))
    assert torch.cat([y for _, y in dm.test_dataloader()]).tolist() == list(range(5))
    # No augmentation at eval: the batch is exactly the normalized stored images.
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in data.NORMALIZE["cifar10"])
    x = torch.cat([x for x, _ in val])
    assert x.dtype == torch.float32
    assert torch.allclose(x, (splits.val_x.float() / 255 - mean) / std, atol=1e-6)


def test_float_data_passes_through_unchanged():
    splits = tiny_splits(image=False)
    dm = TensorDataModule(splits, batch_size=8, seed=0)
    x, y = next(iter(dm.train_dataloader()))
    assert torch.equal(x, splits.train_x[y])
    with pytest.raises(UserError, match="augment=True needs image data"):
        TensorDataModule(splits, batch_size=8, seed=0, augment=True)
    with pytest.raises(UserError, match="batch_size=41 is larger"):
        TensorDataModule(splits, batch_size=41, seed=0)


def test_augmentation_is_a_batched_crop_and_flip():
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    out = data.augment_batch(x, torch.Generator().manual_seed(0), pad=2)
    again = data.augment_batch(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.equal(out, again)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    matches = []
    for i in range(16):  # each output is one crop of the padded image, maybe mirrored
        found = [
            (dy, dx, f)
            for dy in range(5)
            for dx in range(5)
            for f in (False, True)
            if torch.equal(out[i], (lambda c: c.flip(-1) if f else c)(padded[i, :, dy : dy + 8, dx : dx + 8]))
        ]
        assert len(found) == 1, i
        matches += found
    assert any(f for _, _, f in matches) and not all(f for _, _, f in matches)  # flips happen, p < 1
    assert any((dy, dx) != (2, 2) for dy, dx, _ in matches)  # crops move the image


def test_augmentation_in_the_datamodule_changes_training_images_only():
    splits = tiny_splits()
    plain = TensorDataModule(splits, 8, seed=3)
    aug = TensorDataModule(splits, 8, seed=3, augment=True)
    (xp, yp), (xa, ya) = next(iter(plain.train_dataloader())), next(iter(aug.train_dataloader()))
    assert torch.equal(yp, ya) and xp.shape == xa.shape == (8, 3, 32, 32)
    assert not torch.equal(xp, xa)
    twin = TensorDataModule(splits, 8, seed=3, augment=True)
    assert torch.equal(xa, next(iter(twin.train_dataloader()))[0])  # same seed, same augmentation


def test_lightning_trainer_sees_the_same_batches():
    import lightning.pytorch as pl

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[list[int]] = []

        def on_train_epoch_start(self):
            self.seen.append([])

        def training_step(self, batch, _):
            x, y = batch
            self.seen[-1].extend(y.tolist())
            return (self.w * x.float().mean()).sum()

        def validation_step(self, batch, _):
            pass

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    splits = tiny_splits()
    dm = TensorDataModule(splits, batch_size=8, seed=11, augment=True, eval_batch_size=16)
    probe = Probe()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(probe, datamodule=dm)
    assert probe.seen == epoch_labels(TensorDataModule(splits, 8, seed=11), epochs=2)


# ---------------------------------------------------------------- real data (optional)


@pytest.mark.slow
def test_real_mnist_sizes_and_first_labels():
    raw = REPO / "data" / "MNIST" / "raw"
    if not raw.is_dir():
        pytest.skip(
            f"no real MNIST under {raw} (lay it out with /work/shared/data/prepare or 'gradbench data download')"
        )
    labels = next(p for p in (raw / "train-labels-idx1-ubyte", raw / "train-labels-idx1-ubyte.gz") if p.is_file())
    assert data.read_idx(labels)[:5].tolist() == [5, 0, 4, 1, 9]
    s = data.load_mnist(REPO / "data")
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (55000, 5000, 10000)
    assert len(s.train_y) == 55000 and len(s.val_y) == 5000 and len(s.test_y) == 10000


@pytest.mark.parametrize("name", ["adding", "recall"])
def test_the_generators_defaults_are_the_typed_parameters(name):
    """catalogue/data_params.py declares what a suite may set; the generator's own defaults
    must be the same values, or a suite and a direct call would build different data."""
    import inspect

    from gradbench.catalogue.data_params import DATA_PARAMS
    from gradbench.training.data.datasets import GENERATED

    defaults = {k: p.default for k, p in inspect.signature(GENERATED[name]).parameters.items()}
    assert defaults == DATA_PARAMS[name]().model_dump()


def test_recall_sequences_hold_distinct_keys_and_the_query_names_the_value_that_followed_it():
    a = data.make_recall(pairs=5, keys=7, values=3, n_train=40, n_val=6, n_test=8, seed=2)
    b = data.make_recall(pairs=5, keys=7, values=3, n_train=40, n_val=6, n_test=8, seed=2)
    assert a.fingerprint == b.fingerprint != data.make_recall(pairs=5, keys=7, values=3, seed=3).fingerprint
    assert a.name == "recall" and a.num_classes == 3 and a.input_shape == (11, 10)
    for x, y, n in ((a.train_x, a.train_y, 40), (a.val_x, a.val_y, 6), (a.test_x, a.test_y, 8)):
        assert x.shape == (n, 11) and y.shape == (n,) and x.dtype == y.dtype == torch.int64
        keys, values, query = x[:, 0:-1:2], x[:, 1:-1:2], x[:, -1]
        assert ((keys >= 0) & (keys < 7)).all() and ((values >= 7) & (values < 10)).all()
        assert all(len(set(row.tolist())) == 5 for row in keys)  # distinct keys in a sequence
        where = (keys == query[:, None]).int().argmax(1)
        assert (keys[torch.arange(n), where] == query).all()
        assert torch.equal(values[torch.arange(n), where] - 7, y)
    with pytest.raises(UserError, match="pairs"):
        data.make_recall(pairs=8, keys=4)


@pytest.mark.parametrize("task_name", ["adding_rnn", "recall_transformer"])
def test_a_generated_tasks_chance_is_the_best_constant_predictor_on_its_test_set(task_name):
    """adding: the test targets' variance (the MSE of predicting their mean); recall: the share
    of the most common value (the accuracy of always naming it)."""
    from gradbench.catalogue.tasks import TASKS

    task = TASKS.get(task_name)
    s = data.load_dataset(task.dataset, REPO / "data", **task.data)
    if task.metric == "mse":
        best = float(s.test_y.var(unbiased=False))
    else:
        best = float(torch.bincount(s.test_y).max()) / len(s.test_y)
    assert task.chance == pytest.approx(best, abs=5e-5)
