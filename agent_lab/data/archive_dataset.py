"""In-memory data sets read from an image-folder tar archive, with a decoded-tensor cache.

Decoding all of CIFAR-10 takes several seconds, so the decoded tensors are saved once under
``decoded_cache_dir()`` in a file keyed by the archive's name, size and modification time;
later loads read that file instead (about a second).
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import torch

from .archive import read_image_archive
from .bundle import Split
from .errors import DataUnavailableError
from .imagefolder import TEST_SPLIT_NAMES, check_same_classes, encoded_split
from .paths import decoded_cache_dir


def cache_path_for(archive: Path, image_size: int | None) -> Path:
    stat = archive.stat()
    size_tag = "native" if image_size is None else str(image_size)
    return decoded_cache_dir() / f"{archive.name}-{stat.st_size}-{stat.st_mtime_ns}-{size_tag}.pt"


def load_image_archive(path: str | Path, image_size: int | None, dataset: str) -> tuple[Split, Split, list[str]]:
    """Train split, test split and classes of an archive of ``train/`` and ``test/`` (or ``val/``)."""
    archive = Path(path).expanduser()
    if not archive.is_file():
        raise DataUnavailableError(
            f"{dataset}: archive {archive} does not exist (expected a tar of train/<class>/ and "
            f"test/<class>/ images, such as cifar10-jpeg.tar.gz)"
        )
    cache = cache_path_for(archive, image_size)
    if cache.is_file():
        cached = _load_cache(cache)
        if cached is not None:
            return cached
    train, test, classes = decode_image_archive(archive, image_size, dataset)
    _save_cache(cache, train, test, classes)
    return train, test, classes


def decode_image_archive(archive: Path, image_size: int | None, dataset: str) -> tuple[Split, Split, list[str]]:
    contents = read_image_archive(archive)
    test_name = next((name for name in TEST_SPLIT_NAMES if name in contents), None)
    if "train" not in contents or test_name is None:
        raise DataUnavailableError(
            f"{dataset}: archive {archive} must hold train/<class>/ and test/<class>/ (or val/) images, "
            f"found top-level splits {sorted(contents)}"
        )
    classes = list(contents["train"])
    check_same_classes(classes, list(contents[test_name]), str(archive))
    splits = []
    for split in ("train", test_name):
        blobs = {name: [blob for _, blob in files] for name, files in contents[split].items()}
        try:
            splits.append(encoded_split(blobs, classes, image_size))
        except RuntimeError as error:  # torchvision's decoders reject damaged images with RuntimeError
            raise DataUnavailableError(
                f"{dataset}: archive {archive} holds a damaged image in {split}/ ({' '.join(str(error).split())}); "
                f"re-copy or re-download it"
            ) from error
    return splits[0], splits[1], classes


def _load_cache(cache: Path) -> tuple[Split, Split, list[str]] | None:
    """The splits saved in ``cache``, or None (with a warning) when the file cannot be read."""
    try:
        saved = torch.load(cache, weights_only=True)
        return (Split(saved["train_images"], saved["train_labels"]),
                Split(saved["test_images"], saved["test_labels"]), list(saved["classes"]))
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as error:
        warnings.warn(f"ignoring the unreadable decoded-image cache {cache} ({type(error).__name__}: {error}); "
                      "decoding the archive again", stacklevel=3)
        return None


def _save_cache(cache: Path, train: Split, test: Split, classes: list[str]) -> None:
    payload = {"train_images": train.images, "train_labels": train.labels,
               "test_images": test.images, "test_labels": test.labels, "classes": classes}
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, tmp)
        os.replace(tmp, cache)
    except OSError as error:  # a read-only cache folder only costs speed
        tmp.unlink(missing_ok=True)
        warnings.warn(f"could not cache decoded images at {cache}: {error}", stacklevel=3)
