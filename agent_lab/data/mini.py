"""``cifar10-mini``: a small real CIFAR-10 subset shipped in the repository as one ``.npz``.

The file keeps the original JPEG bytes of the first ``train_per_class`` training and
``test_per_class`` test images of every class (by sorted file name), which is far smaller
than decoded pixels. Rebuild it from the full JPEG archive with::

    python -m agent_lab.data.mini path/to/cifar10-jpeg.tar.gz data/cifar10-mini.npz
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch

from .archive import read_image_archive
from .bundle import DatasetBundle, Split
from .catalog import CIFAR10_CLASSES, NORMALIZATION
from .decode import decode_rgb, stack_square
from .errors import DataChecksumError, DataUnavailableError
from .npz_store import load_npz_bytes, pack_blobs, save_npz_reproducible, unpack_blobs
from .paths import ENV_VAR, bundled_search_dirs

MINI_FILE_NAME = "cifar10-mini.npz"
MINI_SHA256 = "72f31b95172eddd36292251733fbe8c70825541135a1d15a60672eab5b18719d"
SPLITS = ("train", "test")
REBUILD_HINT = (
    "rebuild it with `python -m agent_lab.data.mini <cifar10-jpeg.tar.gz> {path}` "
    "(the archive holds train/<class>/*.jpg and test/<class>/*.jpg)"
)


def build_cifar10_mini(
    archive_path: str | Path,
    out_path: str | Path,
    train_per_class: int = 400,
    test_per_class: int = 100,
) -> str:
    """Write the subset file from a CIFAR-10 JPEG archive; returns the file's sha256.

    Deterministic: the same archive and counts always give byte-identical output.
    """
    counts = {"train": train_per_class, "test": test_per_class}
    for field, value in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{field} must be a positive integer, got {value!r}")
    contents = read_image_archive(archive_path, splits=SPLITS)
    arrays: dict[str, np.ndarray] = {"classes": np.array(CIFAR10_CLASSES)}
    for split in SPLITS:
        classes = tuple(contents.get(split, {}))
        if classes != CIFAR10_CLASSES:
            raise ValueError(
                f"{archive_path}: split {split!r} has class folders {list(classes)}, "
                f"expected the CIFAR-10 classes {list(CIFAR10_CLASSES)}"
            )
        blobs: list[bytes] = []
        labels: list[int] = []
        for label, class_name in enumerate(CIFAR10_CLASSES):
            files = contents[split][class_name]
            if len(files) < counts[split]:
                raise ValueError(
                    f"{archive_path}: {split}/{class_name} has {len(files)} images, "
                    f"fewer than {split}_per_class={counts[split]}"
                )
            blobs.extend(data for _, data in files[: counts[split]])
            labels.extend([label] * counts[split])
        arrays[f"{split}_jpeg"], arrays[f"{split}_offsets"] = pack_blobs(blobs)
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.int64)
    save_npz_reproducible(out_path, arrays)
    return file_sha256(out_path)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def find_mini_file() -> Path:
    """The first ``cifar10-mini.npz`` in ``$AGENT_LAB_DATA``, then the repository's ``data/``."""
    candidates = [folder / MINI_FILE_NAME for folder in bundled_search_dirs()]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataUnavailableError(
        f"cifar10-mini: {MINI_FILE_NAME} not found (looked in {', '.join(map(str, candidates))}); "
        + REBUILD_HINT.format(path=candidates[-1])
        + f", or point {ENV_VAR} at a folder that holds it"
    )


def read_jpeg_npz(data: bytes) -> tuple[Split, Split, list[str]]:
    """Decode the train/test splits of a JPEG ``.npz`` held in memory."""
    arrays = load_npz_bytes(data)
    splits = []
    for split in SPLITS:
        blobs = unpack_blobs(arrays[f"{split}_jpeg"], arrays[f"{split}_offsets"])
        images = stack_square(decode_rgb([torch.from_numpy(blob.copy()) for blob in blobs]), size=None)
        splits.append(Split(images, torch.from_numpy(arrays[f"{split}_labels"].astype(np.int64))))
    return splits[0], splits[1], [str(name) for name in arrays["classes"]]


def load_cifar10_mini(path: str | Path | None = None) -> DatasetBundle:
    """Load the bundled subset after checking its sha256 against ``MINI_SHA256``."""
    path = Path(path) if path is not None else find_mini_file()
    if not path.is_file():
        raise DataUnavailableError(f"cifar10-mini: {path} does not exist; " + REBUILD_HINT.format(path=path))
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MINI_SHA256:
        raise DataChecksumError(
            f"cifar10-mini: {path} has sha256 {digest}, expected {MINI_SHA256} "
            f"(the file is corrupt or from a different build); " + REBUILD_HINT.format(path=path)
        )
    train, test, classes = read_jpeg_npz(data)
    mean, std = NORMALIZATION["cifar10"]
    return DatasetBundle(
        name="cifar10-mini", train=train, test=test, num_classes=len(classes), classes=classes,
        mean=mean, std=std, flip=True, image_size=int(train.images.shape[-1]),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m agent_lab.data.mini",
        description="Build the cifar10-mini .npz from a CIFAR-10 JPEG image-folder archive.",
    )
    parser.add_argument("archive", type=Path, help="cifar10-jpeg.tar.gz (train/<class>/*.jpg, test/<class>/*.jpg)")
    parser.add_argument("out", type=Path, help=f"output file, normally data/{MINI_FILE_NAME}")
    parser.add_argument("--train-per-class", type=int, default=400)
    parser.add_argument("--test-per-class", type=int, default=100)
    args = parser.parse_args(argv)
    digest = build_cifar10_mini(args.archive, args.out, args.train_per_class, args.test_per_class)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes) sha256 {digest}")
    if digest != MINI_SHA256:
        print(f"note: load_cifar10_mini expects sha256 {MINI_SHA256}; this file will not load as cifar10-mini")


if __name__ == "__main__":
    main()
