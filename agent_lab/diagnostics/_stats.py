"""Streaming float64 moments (Welford / Chan) and the Pearson correlation.

Per coordinate, after K vectors v_1..v_K: ``mean`` and ``m2 = Σ_k (v_k - mean)²``; the unbiased
sample variance is ``m2 / (K - 1)``. :class:`CrossMoments` also keeps the co-moment
``Σ_k (g_k - mean_g)(o_k - mean_o)`` of two paired streams. Only O(1) vectors are held.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


class Moments:
    """Per-coordinate running mean and sum of squared deviations (Welford; Chan for blocks)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def update(self, v: torch.Tensor) -> None:
        v = v.to(torch.float64)
        self.count += 1
        if self.mean is None:
            self.mean, self.m2 = v.clone(), torch.zeros_like(v)
            return
        delta = v - self.mean
        self.mean.add_(delta / self.count)
        self.m2.add_(delta * (v - self.mean))

    def update_block(self, block: torch.Tensor) -> None:
        """Add the rows of ``block`` (shape ``(m, P)``) at once (Chan et al.'s pairwise update)."""
        block = block.to(torch.float64)
        m = block.shape[0]
        if m == 0:
            return
        mean_b = block.mean(dim=0)
        m2_b = (block - mean_b).square().sum(dim=0)
        if self.mean is None:
            self.count, self.mean, self.m2 = m, mean_b, m2_b
            return
        n = self.count + m
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (m / n)
        self.m2 = self.m2 + m2_b + delta.square() * (self.count * m / n)
        self.count = n

    def variance(self) -> torch.Tensor:
        """Unbiased (ddof=1) per-coordinate variance; needs count >= 2."""
        return self.m2 / (self.count - 1)


class CrossMoments:
    """Two paired streams (g_k, o_k): per-coordinate moments of each and their co-moment."""

    def __init__(self) -> None:
        self.count = 0
        self.mean_g = self.mean_o = self.m2_g = self.m2_o = self.c_go = None

    def update(self, g: torch.Tensor, o: torch.Tensor) -> None:
        g, o = g.to(torch.float64), o.to(torch.float64)
        self.count += 1
        if self.mean_g is None:
            self.mean_g, self.mean_o = g.clone(), o.clone()
            self.m2_g, self.m2_o, self.c_go = torch.zeros_like(g), torch.zeros_like(o), torch.zeros_like(g)
            return
        dg = g - self.mean_g
        do = o - self.mean_o
        self.mean_g.add_(dg / self.count)
        self.mean_o.add_(do / self.count)
        self.m2_g.add_(dg * (g - self.mean_g))
        self.m2_o.add_(do * (o - self.mean_o))
        self.c_go.add_(dg * (o - self.mean_o))

    def traces(self) -> tuple[float, float, float]:
        """(tr Var(g), tr Var(o), tr Cov(g, o)), unbiased; needs count >= 2."""
        k = self.count - 1
        return (float(self.m2_g.sum()) / k, float(self.m2_o.sum()) / k, float(self.c_go.sum()) / k)


def pearson(a: Any, b: Any) -> float:
    """Pearson correlation of two equally long vectors (tensors, arrays, sequences), in float64.

    ``r = Σ a'b' / sqrt(Σ a'² · Σ b'²)`` with ``a' = (a - mean a) / max|a - mean a|`` (likewise
    b'); the rescaling keeps the sums away from overflow and underflow without changing r. For
    identical inputs the result is exactly 1.0 and for ``b = -a`` exactly -1.0 (``sqrt(s·s) == s``
    in IEEE arithmetic). NaN when either vector is constant or not finite.
    """
    ta = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a)
    tb = torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b)
    ta = ta.detach().reshape(-1).to(torch.float64)
    tb = tb.detach().reshape(-1).to(device=ta.device, dtype=torch.float64)
    if ta.numel() != tb.numel():
        raise ValueError(f"pearson: a and b must have the same number of elements, got {ta.numel()} and {tb.numel()}")
    if ta.numel() < 2:
        raise ValueError(f"pearson: needs at least 2 elements, got {ta.numel()}")
    if not (bool(torch.isfinite(ta).all()) and bool(torch.isfinite(tb).all())):
        return math.nan
    ac, bc = ta - ta.mean(), tb - tb.mean()
    sa, sb = ac.abs().max(), bc.abs().max()
    if float(sa) == 0.0 or float(sb) == 0.0:
        return math.nan
    ac, bc = ac / sa, bc / sb
    num = float((ac * bc).sum())
    den = math.sqrt(float((ac * ac).sum()) * float((bc * bc).sum()))
    return max(-1.0, min(1.0, num / den))


def spread(values: list[float]) -> tuple[float, float]:
    """(mean, sample std with ddof=1) of replicate values; std is 0.0 for a single value."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1)) if arr.size > 1 else 0.0)
