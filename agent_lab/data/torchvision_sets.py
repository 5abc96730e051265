"""CIFAR-10, CIFAR-100 and SVHN through ``torchvision.datasets``, without ever hanging offline.

The files are looked for first (no network); only when they are missing, and ``download`` is
allowed, is a download tried, under a socket timeout, and any failure becomes a
``DataUnavailableError`` that says where the files belong.
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision

from .bundle import Split
from .errors import OFFLINE_CHOICES, DataUnavailableError

NETWORK_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TorchvisionSource:
    name: str
    class_name: str  # attribute of torchvision.datasets
    files: str  # what to put where, in words
    subfolder: str  # folder under root that torchvision reads ("" = root itself)
    extra_hint: str = ""


SOURCES = {
    "cifar10": TorchvisionSource(
        "cifar10", "CIFAR10", "cifar-10-python.tar.gz or its extracted cifar-10-batches-py/", "cifar-10-batches-py",
        extra_hint="data_root may also be an image-folder directory (train/, test/) or a cifar10-jpeg.tar.gz; ",
    ),
    "cifar100": TorchvisionSource(
        "cifar100", "CIFAR100", "cifar-100-python.tar.gz or its extracted cifar-100-python/", "cifar-100-python"
    ),
    "svhn": TorchvisionSource("svhn", "SVHN", "train_32x32.mat and test_32x32.mat", ""),
}


def load_torchvision_dataset(name: str, root: Path, download: bool) -> tuple[Split, Split, list[str]]:
    """Train split, test split and class names of ``name`` read by torchvision from ``root``."""
    source = SOURCES[name]
    if name == "svhn" and importlib.util.find_spec("scipy") is None:
        raise DataUnavailableError(
            "svhn: torchvision reads SVHN's .mat files with scipy, which is not installed "
            f"(pip install scipy); {OFFLINE_CHOICES}"
        )
    try:
        return _read(source, root, download=False)
    except RuntimeError as missing:  # torchvision: "Dataset not found or corrupted"
        if not download:
            raise DataUnavailableError(_unavailable_message(source, root, "download=False")) from missing
    try:
        with _socket_timeout(NETWORK_TIMEOUT_S):
            return _read(source, root, download=True)
    except Exception as failure:  # any failure to fetch means the data set is unavailable
        reason = f"download failed: {type(failure).__name__}: {failure}"
        raise DataUnavailableError(_unavailable_message(source, root, reason)) from failure


def _unavailable_message(source: TorchvisionSource, root: Path, reason: str) -> str:
    expected = root / source.subfolder if source.subfolder else root
    message = (
        f"{source.name}: files not found under {root} ({reason}); put {source.files} in {root} "
        f"(torchvision.datasets.{source.class_name} reads {expected}), {source.extra_hint}"
        f"or set data_root (or $AGENT_LAB_DATA) to where they are; {OFFLINE_CHOICES}"
    )
    return " ".join(message.split())


def _read(source: TorchvisionSource, root: Path, download: bool) -> tuple[Split, Split, list[str]]:
    dataset_class = getattr(torchvision.datasets, source.class_name)
    if source.name == "svhn":
        train = dataset_class(str(root), split="train", download=download)
        test = dataset_class(str(root), split="test", download=download)
        return _from_chw(train.data, train.labels), _from_chw(test.data, test.labels), [str(i) for i in range(10)]
    train = dataset_class(str(root), train=True, download=download)
    test = dataset_class(str(root), train=False, download=download)
    return _from_hwc(train.data, train.targets), _from_hwc(test.data, test.targets), list(train.classes)


def _from_hwc(images: np.ndarray, labels) -> Split:
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
    return Split(pixels, torch.as_tensor(np.asarray(labels), dtype=torch.int64))


def _from_chw(images: np.ndarray, labels) -> Split:
    return Split(torch.from_numpy(np.ascontiguousarray(images)), torch.as_tensor(np.asarray(labels), dtype=torch.int64))


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
