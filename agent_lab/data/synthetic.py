"""A small deterministic data set that a network can learn: smooth class patterns plus noise."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .bundle import Split

SYNTHETIC_SEED = 1234


def make_synthetic(
    num_classes: int = 10, n_train: int = 512, n_test: int = 256, size: int = 32, seed: int = SYNTHETIC_SEED
) -> tuple[Split, Split, list[str]]:
    """Balanced uint8 ``[N, 3, size, size]`` images; class ``c`` is a fixed smooth colour pattern
    (a random 4x4 grid upsampled) plus per-pixel Gaussian noise. Same arguments, same tensors."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, 3, 4, 4, generator=generator)
    patterns = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)

    def draw(n: int) -> Split:
        labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=generator)]
        noise = torch.randn(n, 3, size, size, generator=generator)
        pixels = 0.2 + 0.6 * patterns[labels] + 0.12 * noise
        images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8)
        return Split(images, labels.to(torch.int64))

    train = draw(n_train)
    test = draw(n_test)
    return train, test, [f"pattern{c}" for c in range(num_classes)]
