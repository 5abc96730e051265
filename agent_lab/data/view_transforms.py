"""Per-image views for streamed data: the standard ImageNet training and evaluation crops.

Randomness comes only from the ``numpy.random.Generator`` passed in, so a view is a pure
function of the image and that generator's seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)


def resize_size_for(crop_size: int) -> int:
    """Shorter side before the center crop: 256 for a 224 crop, in proportion otherwise."""
    return round(crop_size * 256 / 224)


def random_resized_crop_box(height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` as ``RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3))`` samples it."""
    area = height * width
    log_ratio = (math.log(RATIO[0]), math.log(RATIO[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*SCALE)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    ratio = width / height  # fall back to a central crop of the allowed aspect ratio
    if ratio < RATIO[0]:
        w, h = width, round(width / RATIO[0])
    elif ratio > RATIO[1]:
        h, w = height, round(height * RATIO[1])
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def train_view(image: torch.Tensor, size: int, flip: bool, rng: np.random.Generator) -> torch.Tensor:
    """Random resized crop to ``size x size``, then a horizontal flip with probability 1/2."""
    top, left, h, w = random_resized_crop_box(image.shape[-2], image.shape[-1], rng)
    view = TF.resized_crop(image, top, left, h, w, [size, size], antialias=True)
    if flip and rng.random() < 0.5:
        view = TF.horizontal_flip(view)
    return view


def eval_view(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``resize_size_for(size)``, then center-crop ``size x size``."""
    view = TF.resize(image, resize_size_for(size), antialias=True)
    return TF.center_crop(view, [size, size])
