"""Decoding encoded images into uint8 ``[N, 3, H, W]`` tensors."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import torch
from torchvision.io import ImageReadMode, decode_image, decode_jpeg
from torchvision.transforms.v2 import functional as TF

_JPEG_MAGIC = b"\xff\xd8"


@contextlib.contextmanager
def quiet_image_io() -> Iterator[None]:
    """Silence torchvision's per-call notice that ``torchvision.io`` decoding is deprecated
    (since 0.29, in favour of TorchCodec); the decoders themselves are unchanged."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding", category=DeprecationWarning)
        yield


def as_byte_tensor(data: bytes | bytearray | memoryview) -> torch.Tensor:
    """A 1-D uint8 tensor holding ``data`` (copied, so the tensor owns writable memory)."""
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def decode_rgb(encoded: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Decode encoded images to RGB uint8 ``[3, H, W]`` tensors.

    JPEGs go through one batched ``decode_jpeg`` call; other formats are decoded one by one.
    """
    encoded = list(encoded)
    is_jpeg = [bytes(t[:2].tolist()) == _JPEG_MAGIC for t in encoded]
    jpeg_positions = [i for i, flag in enumerate(is_jpeg) if flag]
    decoded: list[torch.Tensor | None] = [None] * len(encoded)
    with quiet_image_io():
        if jpeg_positions:
            batch = decode_jpeg([encoded[i] for i in jpeg_positions], mode=ImageReadMode.RGB)
            for position, image in zip(jpeg_positions, batch):
                decoded[position] = image
        for position, flag in enumerate(is_jpeg):
            if not flag:
                decoded[position] = decode_image(encoded[position], mode=ImageReadMode.RGB)
    return decoded  # type: ignore[return-value]


def resize_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` and center-crop to ``size x size``."""
    if tuple(image.shape[-2:]) == (size, size):
        return image
    image = TF.resize(image, size, antialias=True)
    return TF.center_crop(image, [size, size])


def stack_square(images: Sequence[torch.Tensor], size: int | None) -> torch.Tensor:
    """Stack decoded images into ``[N, 3, size, size]`` (``size=None``: all must share one size)."""
    if not images:
        raise ValueError("no images to stack")
    if size is not None:
        images = [resize_square(image, size) for image in images]
    shapes = sorted({tuple(image.shape) for image in images})
    if len(shapes) > 1:
        raise ValueError(f"images have different sizes (e.g. {shapes[:3]}); pass image_size to resize them")
    return torch.stack(list(images))
