"""The data a run trains on: files -> Splits (train/val/test tensors) -> a DataModule.

splits.py      Splits, the fixed validation carve-out and the fingerprint
files.py       MNIST (IDX) and CIFAR-10 (pickle batches) readers, and which are present
adding.py      the adding problem, generated
recall.py      associative recall, generated
datasets.py    datasets by name, each loaded once per process; the data root
download.py    torchvision downloads (optional extra)
datamodule.py  batching, augmentation, the LightningDataModule
"""

from .adding import make_adding
from .datamodule import (
    NORMALIZE,
    TensorDataModule,
    apply_augment,
    augment_batch,
    draw_augment,
)
from .datasets import DATASETS, load_dataset, load_task_data, resolve_data_root
from .download import download
from .files import (
    CIFAR_TEST_FILE,
    CIFAR_TRAIN_FILES,
    MNIST_FILES,
    MNIST_MEAN,
    MNIST_STD,
    describe,
    load_cifar10,
    load_mnist,
    read_idx,
)
from .recall import make_recall
from .splits import Splits

__all__ = [
    "CIFAR_TEST_FILE",
    "CIFAR_TRAIN_FILES",
    "DATASETS",
    "MNIST_FILES",
    "MNIST_MEAN",
    "MNIST_STD",
    "NORMALIZE",
    "Splits",
    "TensorDataModule",
    "apply_augment",
    "augment_batch",
    "describe",
    "download",
    "draw_augment",
    "load_cifar10",
    "load_dataset",
    "load_mnist",
    "load_task_data",
    "make_adding",
    "make_recall",
    "read_idx",
    "resolve_data_root",
]
