"""Reading image-folder archives (``<split>/<class>/<file>``) straight from a tar file."""

from __future__ import annotations

import tarfile
from collections import defaultdict
from pathlib import Path, PurePosixPath

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

# {split: {class name: [(file name, encoded bytes), ...] sorted by file name}}
ArchiveContents = dict[str, dict[str, list[tuple[str, bytes]]]]


def read_image_archive(path: str | Path, splits: tuple[str, ...] | None = None) -> ArchiveContents:
    """Read every image of a ``<split>/<class>/<file>`` tar archive (any compression).

    Members are matched by their last three path components, so a leading folder
    (``cifar10/train/cat/0001.jpg``) is accepted. Files are sorted by name within a class.
    """
    contents: dict[str, dict[str, list[tuple[str, bytes]]]] = defaultdict(lambda: defaultdict(list))
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            if not member.isfile():
                continue
            parts = PurePosixPath(member.name).parts
            if len(parts) < 3 or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
                continue
            split, class_name, file_name = parts[-3:]
            if splits is not None and split not in splits:
                continue
            handle = archive.extractfile(member)
            assert handle is not None  # regular files always have content
            contents[split][class_name].append((file_name, handle.read()))
    return {
        split: {name: sorted(files) for name, files in sorted(classes.items())}
        for split, classes in sorted(contents.items())
    }
