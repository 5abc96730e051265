"""Batched random crop (zero padding) and horizontal flip of uint8 images, as tensor ops."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_flip_params(
    batch: int, pad: int, flip: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row offsets, column offsets (each in ``[0, 2 * pad]``) and flip flags, drawn on CPU."""
    offsets = torch.randint(0, 2 * pad + 1, (2, batch), generator=generator)
    if flip:
        flips = torch.rand(batch, generator=generator) < 0.5
    else:
        flips = torch.zeros(batch, dtype=torch.bool)
    return offsets[0], offsets[1], flips


def crop_flip(images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, flips: torch.Tensor, pad: int) -> torch.Tensor:
    """Crop every image of ``[B, C, H, W]`` from its zero-padded version at (``rows[b]``,
    ``cols[b]``) and mirror it left-right where ``flips[b]``, for the whole batch at once.

    Equals, per image: ``F.pad(img, (pad,) * 4)[:, r:r + H, c:c + W]``, then ``flip(-1)`` if flipped.
    """
    batch, _, height, width = images.shape
    device = images.device
    if device.type == "cuda":  # one pinned, non-blocking transfer: the step never waits for the copy
        packed = torch.stack([rows, cols, flips.to(rows.dtype)]).pin_memory().to(device, non_blocking=True)
        rows, cols, flips = packed[0], packed[1], packed[2].bool()
    padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
    # windows[b, c, r, k] is the H x W window of image b, channel c, at offset (r, k): a view, no copy.
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)
    crops = windows[torch.arange(batch, device=device), :, rows.to(device), cols.to(device)]
    return torch.where(flips.to(device)[:, None, None, None], crops.flip(-1), crops)
