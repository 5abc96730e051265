"""Class-stratified, deterministic selection of example indices."""

from __future__ import annotations

import torch

from .seeding import SUBSET, torch_generator


def stratified_indices(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Pick ``n`` indices so that every class keeps its share of ``labels`` (to within one).

    Inside each class the examples are taken in a random order fixed by ``seed``; the
    result is sorted, so the chosen examples keep their original order.
    """
    total = int(labels.numel())
    if not 0 <= n <= total:
        raise ValueError(f"subset size must be between 0 and {total}, got {n}")
    generator = torch_generator(SUBSET, seed)
    labels = labels.cpu()
    # Rank every example inside its class in a seeded random order, then order all examples
    # by (rank + 1/2) / class size: the first n of that order hold each class in proportion.
    order = torch.randperm(total, generator=generator)
    shuffled = labels[order]
    by_class = torch.sort(shuffled, stable=True).indices  # grouped by class, random within
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    ranks_sorted = torch.arange(total) - starts[shuffled[by_class]]
    rank = torch.empty(total, dtype=torch.long)
    rank[order[by_class]] = ranks_sorted
    key = (rank.double() + 0.5) / counts[labels].double()
    # Equal keys keep index order (stable sort), so the result is fully determined by seed.
    chosen = torch.sort(key, stable=True).indices[:n]
    return torch.sort(chosen).values
