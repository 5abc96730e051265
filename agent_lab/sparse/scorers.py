"""Drop and grow on one layer, and the scores that decide which positions grow.

All functions are pure: they return new masks and never touch weights. Ties are broken by the flat
(row-major) index, lower index first, so results are the same on every device.
"""
from __future__ import annotations

from typing import Sequence

import torch


def _check_mask(mask: torch.Tensor, other: torch.Tensor, other_name: str) -> None:
    if mask.dtype != torch.bool:
        raise TypeError(f"mask: expected a bool tensor, got {mask.dtype}")
    if mask.shape != other.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from {other_name} shape {tuple(other.shape)}")


def drop_by_magnitude(weight: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
    """``mask`` without the ``n`` connected positions of smallest ``|weight|``."""
    _check_mask(mask, weight, "weight")
    flat_mask = mask.reshape(-1)
    connected = flat_mask.nonzero().squeeze(1)
    if not 0 <= n <= connected.numel():
        raise ValueError(f"n: cannot drop {n} of {connected.numel()} connected weights")
    magnitude = weight.detach().reshape(-1)[connected].abs()
    # A stable ascending sort of the connected positions (listed in index order) puts the lower
    # index first among equal magnitudes.
    order = torch.sort(magnitude, stable=True).indices
    kept = flat_mask.clone()
    kept[connected[order[:n]]] = False
    return kept.view_as(mask)


def grow(scores: torch.Tensor, mask: torch.Tensor, n: int,
         forbidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Connect the ``n`` highest-scoring unconnected positions not in ``forbidden``.

    Returns ``(new_mask, grown)``; fewer than ``n`` grow only when fewer candidates exist.
    """
    _check_mask(mask, scores, "scores")
    if n < 0:
        raise ValueError(f"n: {n} is invalid; it must be >= 0")
    candidates = ~mask
    if forbidden is not None:
        _check_mask(forbidden, mask, "mask")
        candidates = candidates & ~forbidden
    flat_candidates = candidates.reshape(-1).nonzero().squeeze(1)
    values = scores.detach().reshape(-1).to(mask.device)[flat_candidates]
    order = torch.sort(values, descending=True, stable=True).indices
    grown = torch.zeros(mask.numel(), dtype=torch.bool, device=mask.device)
    grown[flat_candidates[order[:n]]] = True
    grown = grown.view_as(mask)
    return mask | grown, grown


def random_scores(shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """Uniform float64 scores from ``generator`` (a CPU generator): random growth (SET)."""
    return torch.rand(tuple(shape), generator=generator, dtype=torch.float64)


def gradient_scores(grad: torch.Tensor) -> torch.Tensor:
    """``|grad|``: gradient growth (RigL)."""
    return grad.detach().abs()


def unfired_scores(union: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random scores in which every never-connected position outranks every once-connected one.

    ITOP's random-unfired growth: explore weights never used before, at random among them.
    """
    if union.dtype != torch.bool:
        raise TypeError(f"union: expected a bool tensor, got {union.dtype}")
    return random_scores(union.shape, generator) + (~union).to("cpu", torch.float64)
