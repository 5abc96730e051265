"""In-memory image-folder data sets: ``root/train/<class>/*`` and ``root/test|val/<class>/*``."""

from __future__ import annotations

from pathlib import Path

import torch

from .archive import IMAGE_SUFFIXES
from .bundle import Split
from .decode import as_byte_tensor, decode_rgb, stack_square
from .errors import OFFLINE_CHOICES, DataUnavailableError

TEST_SPLIT_NAMES = ("test", "val")


def split_dirs(root: Path, dataset: str = "imagefolder", test_names: tuple[str, ...] = TEST_SPLIT_NAMES) -> tuple[Path, Path]:
    """The train folder and the first existing test folder (``test`` or ``val``) of ``root``."""
    if not root.is_dir():
        raise DataUnavailableError(
            f"{dataset}: root {root} does not exist or is not a folder; it must hold train/<class>/ "
            f"and {'|'.join(test_names)}/<class>/ image folders; {OFFLINE_CHOICES}"
        )
    train_dir = root / "train"
    test_dir = next((root / name for name in test_names if (root / name).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataUnavailableError(
            f"{dataset}: root {root} must hold train/ and {' or '.join(test_names)}/ class folders, "
            f"found sub-folders {found}"
        )
    return train_dir, test_dir


def scan_classes(split_dir: Path) -> dict[str, list[Path]]:
    """``{class name: sorted image files}`` for every class folder of ``split_dir``, sorted by name."""
    classes = {
        folder.name: sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        for folder in sorted(split_dir.iterdir())
        if folder.is_dir()
    }
    empty = [name for name, files in classes.items() if not files]
    if not classes or empty:
        raise DataUnavailableError(
            f"{split_dir}: expected class folders holding {'/'.join(IMAGE_SUFFIXES)} images; "
            + (f"class folders without images: {empty}" if empty else "no class folders found")
        )
    return classes


def check_same_classes(train: list[str], test: list[str], where: str) -> None:
    if train != test:
        raise ValueError(f"{where}: train classes {train} differ from test classes {test}")


def encoded_split(files_by_class: dict[str, list[bytes]], classes: list[str], image_size: int | None) -> Split:
    """Decode ``{class: [encoded image, ...]}`` into a Split labelled by position in ``classes``."""
    encoded, labels = [], []
    for label, name in enumerate(classes):
        encoded.extend(as_byte_tensor(blob) for blob in files_by_class[name])
        labels.extend([label] * len(files_by_class[name]))
    images = stack_square(decode_rgb(encoded), image_size)
    return Split(images, torch.tensor(labels, dtype=torch.int64))


def load_image_folder(root: str | Path, image_size: int, dataset: str = "imagefolder") -> tuple[Split, Split, list[str]]:
    """Decode every image under ``root`` into memory at ``image_size x image_size``."""
    train_dir, test_dir = split_dirs(Path(root).expanduser(), dataset)
    train_files, test_files = scan_classes(train_dir), scan_classes(test_dir)
    classes = list(train_files)
    check_same_classes(classes, list(test_files), str(root))
    splits = [
        encoded_split({name: [p.read_bytes() for p in files] for name, files in by_class.items()}, classes, image_size)
        for by_class in (train_files, test_files)
    ]
    return splits[0], splits[1], classes
