"""``load_dataset``: every named data set as a ``DatasetBundle``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torchvision.transforms.v2 import functional as TF

from .archive_dataset import load_image_archive
from .bundle import DatasetBundle, Split, channel_stats
from .catalog import CIFAR10_CLASSES, FLIP, NORMALIZATION
from .errors import OFFLINE_CHOICES, DataUnavailableError
from .image_stream import ImageFolderStream
from .imagefolder import check_same_classes, load_image_folder, split_dirs
from .paths import default_root
from .synthetic import make_synthetic
from .torchvision_sets import load_torchvision_dataset

__all__ = ["DATASET_NAMES", "DatasetBundle", "Split", "load_dataset"]

DATASET_NAMES = ("cifar10", "cifar100", "svhn", "imagenet", "cifar10-mini", "imagefolder", "synthetic")

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
DEFAULT_IMAGEFOLDER_SIZE = 32
DEFAULT_IMAGENET_SIZE = 224


def load_dataset(
    name: str, root: str | Path | None = None, *, download: bool = True, image_size: int | None = None
) -> DatasetBundle:
    """Load data set ``name`` (one of ``DATASET_NAMES``).

    ``root``: where its files are (default ``$AGENT_LAB_DATA`` or ``~/.cache/agent_lab/data``);
    for ``cifar10`` it may also be an image-folder directory or a ``cifar10-jpeg.tar.gz``.
    ``download``: let torchvision fetch missing cifar10/cifar100/svhn files.
    ``image_size``: side of the square images (resizes fixed-size data sets when it differs).
    Raises ``DataUnavailableError`` when the files are missing and cannot be fetched.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    if image_size is not None and (not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
    path = Path(root).expanduser() if root is not None else None
    bundle = _LOADERS[name](path, download, image_size)
    if image_size is not None and isinstance(bundle.train, Split) and bundle.image_size != image_size:
        bundle = _resized(bundle, image_size)
    return bundle


def _cifar10(root: Path | None, download: bool, image_size: int | None) -> DatasetBundle:
    if root is not None and (root.is_file() or root.name.endswith(ARCHIVE_SUFFIXES)):
        train, test, classes = load_image_archive(root, image_size, "cifar10")
    elif root is not None and (root / "train").is_dir():
        train, test, classes = load_image_folder(root, image_size or 32, "cifar10")
    else:
        train, test, classes = load_torchvision_dataset("cifar10", root or default_root(), download)
    check_same_classes(list(CIFAR10_CLASSES), classes, f"cifar10 at {root}")
    return _bundle("cifar10", train, test, classes)


def _cifar100(root: Path | None, download: bool, image_size: int | None) -> DatasetBundle:
    return _bundle("cifar100", *load_torchvision_dataset("cifar100", root or default_root(), download))


def _svhn(root: Path | None, download: bool, image_size: int | None) -> DatasetBundle:
    return _bundle("svhn", *load_torchvision_dataset("svhn", root or default_root(), download))


def _cifar10_mini(root: Path | None, download: bool, image_size: int | None) -> DatasetBundle:
    # Imported here so that `python -m agent_lab.data.mini` does not find the module preloaded.
    from .mini import MINI_FILE_NAME, load_cifar10_mini

    if root is None:
        return load_cifar10_mini()
    return load_cifar10_mini(root if root.suffix == ".npz" else root / MINI_FILE_NAME)


def _imagefolder(root: Path | None, download: bool, image_size: int | None) -> DatasetBundle:
    if root is None:
        raise DataUnavailableError(
            "imagefolder: needs data_root=<folder holding train/<class>/ and test/<class>/ (or val/) images>; "
            + OFFLINE_CHOICES
        )
    size = image_size or DEFAULT_IMAGEFOLDER_SIZE
    train, test, classes = load_image_folder(root, size)
    mean, std = channel_stats(train.images)
    return DatasetBundle("imagefolder", train, test, len(classes), classes, mean, std, True, size)


def _imagenet(root: Path | None, download: bool, image_size: int | None) -> DatasetBundle:
    root = root or default_root() / "imagenet"
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise DataUnavailableError(
            f"imagenet: expected {root}/train/<wnid>/*.JPEG and {root}/val/<wnid>/*.JPEG (validation images "
            f"sorted into class folders); torchvision cannot download ImageNet, so place it there or pass "
            f"data_root; {OFFLINE_CHOICES}"
        )
    train_dir, val_dir = split_dirs(root, "imagenet", ("val",))
    train, test = ImageFolderStream.scan(train_dir), ImageFolderStream.scan(val_dir)
    check_same_classes(train.classes, test.classes, str(root))
    mean, std = NORMALIZATION["imagenet"]
    size = image_size or DEFAULT_IMAGENET_SIZE
    return DatasetBundle("imagenet", train, test, len(train.classes), train.classes, mean, std, True, size)


def _synthetic(root: Path | None, download: bool, image_size: int | None) -> DatasetBundle:
    train, test, classes = make_synthetic()
    mean, std = channel_stats(train.images)
    return DatasetBundle("synthetic", train, test, len(classes), classes, mean, std, False, 32)


def _bundle(name: str, train: Split, test: Split, classes: list[str]) -> DatasetBundle:
    mean, std = NORMALIZATION[name]
    return DatasetBundle(name, train, test, len(classes), list(classes), mean, std, FLIP[name],
                         int(train.images.shape[-1]))


def _resized(bundle: DatasetBundle, size: int) -> DatasetBundle:
    def resize(split: Split) -> Split:
        images = TF.center_crop(TF.resize(split.images, size, antialias=True), [size, size])
        return Split(images.contiguous(), split.labels)

    return DatasetBundle(bundle.name, resize(bundle.train), resize(bundle.test), bundle.num_classes,
                         bundle.classes, bundle.mean, bundle.std, bundle.flip, size)


_LOADERS: dict[str, Callable[[Path | None, bool, int | None], DatasetBundle]] = {
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "svhn": _svhn,
    "imagenet": _imagenet,
    "cifar10-mini": _cifar10_mini,
    "imagefolder": _imagefolder,
    "synthetic": _synthetic,
}
