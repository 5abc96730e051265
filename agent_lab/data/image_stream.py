"""``ImageFolderStream``: an image-folder split read from disk one image at a time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image, read_file

from .decode import quiet_image_io
from .imagefolder import scan_classes


@dataclass
class ImageFolderStream:
    """File paths and labels of one split; images are decoded on demand as RGB uint8 ``[3, H, W]``."""

    files: list[Path]
    labels: torch.Tensor
    classes: list[str]

    @classmethod
    def scan(cls, split_dir: Path) -> "ImageFolderStream":
        by_class = scan_classes(split_dir)
        files: list[Path] = []
        labels: list[int] = []
        for label, paths in enumerate(by_class.values()):
            files.extend(paths)
            labels.extend([label] * len(paths))
        return cls(files, torch.tensor(labels, dtype=torch.int64), list(by_class))

    def __len__(self) -> int:
        return len(self.files)

    def take(self, indices: torch.Tensor) -> "ImageFolderStream":
        """The examples at ``indices``, in that order."""
        return ImageFolderStream([self.files[i] for i in indices.tolist()], self.labels[indices], self.classes)

    def load(self, index: int) -> torch.Tensor:
        with quiet_image_io():
            return decode_image(read_file(str(self.files[index])), mode=ImageReadMode.RGB)
