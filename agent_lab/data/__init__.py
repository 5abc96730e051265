"""Data sets and loaders: named data sets as ``DatasetBundle``s and replayable batch loaders."""

from .bundle import DatasetBundle, Split
from .datasets import DATASET_NAMES, load_dataset
from .errors import DataChecksumError, DataUnavailableError
from .image_stream import ImageFolderStream
from .loader import InMemoryLoader, make_loaders
from .mini import build_cifar10_mini, load_cifar10_mini
from .streaming import StreamingLoader
from .synthetic import make_synthetic

__all__ = [
    "DATASET_NAMES",
    "DataChecksumError",
    "DataUnavailableError",
    "DatasetBundle",
    "ImageFolderStream",
    "InMemoryLoader",
    "Split",
    "StreamingLoader",
    "build_cifar10_mini",
    "load_cifar10_mini",
    "load_dataset",
    "make_loaders",
    "make_synthetic",
]
