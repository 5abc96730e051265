"""How many weights each layer keeps, and random masks with exactly that many.

``layer_counts`` turns a global sparsity into an exact integer number of connected weights per
layer: ``uniform`` gives every layer the same density, ``erk`` (Erdős–Rényi-Kernel, Evci et al.
2020) makes a layer's density proportional to ``sum(shape) / prod(shape)``, so small layers stay
denser. Layers whose ERK density would exceed 1 are made dense and the rest of the budget is shared
among the others. ``random_masks`` draws masks with exactly those counts (never Bernoulli samples,
whose counts are only right on average).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

DISTRIBUTIONS = ("uniform", "erk")

Shape = Sequence[int]


def _check_sparsity(sparsity: float) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity: {sparsity!r} is invalid; it must be a number in [0, 1)")
    return float(sparsity)


def _erk_densities(shapes: Mapping[str, Shape], target: float, power: float) -> dict[str, float]:
    """Real-valued ERK densities whose weighted sum is ``target`` connected weights, capped at 1."""
    numel = {name: math.prod(shape) for name, shape in shapes.items()}
    raw = {name: (sum(shape) / numel[name]) ** power for name, shape in shapes.items()}
    dense: set[str] = set()
    while True:
        free = [name for name in shapes if name not in dense]
        budget = target - sum(numel[name] for name in dense)
        weight = sum(raw[name] * numel[name] for name in free)
        scale = budget / weight if weight > 0 else 0.0
        # Capping a layer frees budget for the others, so the scale only grows: every layer that
        # exceeds 1 now would exceed it after further capping too, and all can be capped at once.
        over = {name for name in free if scale * raw[name] > 1.0}
        if not over:
            break
        dense |= over
    return {name: 1.0 if name in dense else scale * raw[name] for name in shapes}


def _round_to_total(shares: Mapping[str, float], numel: Mapping[str, int], total: int) -> dict[str, int]:
    """Integers within one of each real share that sum to ``total`` (largest remainder first).

    Ties between equal remainders go to the layer listed first.
    """
    counts = {name: min(int(math.floor(share)), numel[name]) for name, share in shares.items()}
    remainder = {name: shares[name] - counts[name] for name in shares}
    missing = total - sum(counts.values())
    # Only float error in the shares can make ``missing`` negative; then take back from the
    # smallest remainders.
    if missing >= 0:
        for name in sorted(shares, key=lambda name: -remainder[name])[:missing]:
            if counts[name] < numel[name]:
                counts[name] += 1
    else:
        for name in sorted(shares, key=lambda name: remainder[name])[:-missing]:
            if counts[name] > 0:
                counts[name] -= 1
    return counts


def layer_counts(shapes: Mapping[str, Shape], sparsity: float, distribution: str = "erk",
                 erk_power_scale: float = 1.0) -> dict[str, int]:
    """Exact number of connected weights per layer for a global ``sparsity``.

    The total is ``round((1 - sparsity) * N)`` (``N`` = all weights of ``shapes``) and each layer is
    within one weight of its real-valued share. ``erk_power_scale`` raises the ERK ratio to a power
    (1 = ERK, 0 = uniform).
    """
    sparsity = _check_sparsity(sparsity)
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution: {distribution!r} is invalid; valid choices: {', '.join(DISTRIBUTIONS)}")
    if isinstance(erk_power_scale, bool) or not isinstance(erk_power_scale, (int, float)) or erk_power_scale < 0:
        raise ValueError(f"erk_power_scale: {erk_power_scale!r} is invalid; it must be a number >= 0")
    numel = {name: math.prod(shape) for name, shape in shapes.items()}
    for name, n in numel.items():
        if n <= 0:
            raise ValueError(f"shapes[{name!r}]: {tuple(shapes[name])} has no elements")
    density = 1.0 - sparsity
    target = density * sum(numel.values())
    if distribution == "uniform":
        shares = {name: density * n for name, n in numel.items()}
    else:
        densities = _erk_densities(shapes, target, float(erk_power_scale))
        shares = {name: densities[name] * numel[name] for name in shapes}
    return _round_to_total(shares, numel, round(target))


def random_masks(shapes: Mapping[str, Shape], counts: Mapping[str, int],
                 generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Bool masks (on the CPU) with exactly ``counts[name]`` True entries, uniformly at random.

    The positions are the top-``k`` of float64 uniform scores drawn from ``generator`` (a CPU
    ``torch.Generator``), so the global RNG is untouched and the draw is reproducible.
    """
    masks = {}
    for name, shape in shapes.items():
        numel = math.prod(shape)
        k = counts[name]
        if not 0 <= k <= numel:
            raise ValueError(f"counts[{name!r}]: {k} is invalid for a layer of {numel} weights")
        scores = torch.rand(numel, generator=generator, dtype=torch.float64)
        mask = torch.zeros(numel, dtype=torch.bool)
        mask[torch.topk(scores, k, sorted=False).indices] = True
        masks[name] = mask.view(tuple(shape))
    return masks
