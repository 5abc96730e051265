"""Data sets and loaders: named data sets as ``DatasetBundle``s and replayable batch loaders."""

import importlib

from .bundle import DatasetBundle, Split
from .datasets import DATASET_NAMES, load_dataset
from .errors import DataChecksumError, DataUnavailableError
from .image_stream import ImageFolderStream
from .full_pass import ClassMixing, ClassSortedBatchesWarning, full_pass_loader, warn_if_class_sorted
from .loader import InMemoryLoader, make_loaders
from .streaming import StreamingLoader
from .synthetic import make_synthetic

# The mini module is also a command (`python -m agent_lab.data.mini`); importing it lazily keeps
# that command from running a module already loaded by this package.
_LAZY = {"build_cifar10_mini": ".mini", "load_cifar10_mini": ".mini"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ClassMixing",
    "ClassSortedBatchesWarning",
    "DATASET_NAMES",
    "DataChecksumError",
    "DataUnavailableError",
    "DatasetBundle",
    "ImageFolderStream",
    "InMemoryLoader",
    "Split",
    "StreamingLoader",
    "build_cifar10_mini",
    "full_pass_loader",
    "load_cifar10_mini",
    "load_dataset",
    "make_loaders",
    "make_synthetic",
    "warn_if_class_sorted",
]
