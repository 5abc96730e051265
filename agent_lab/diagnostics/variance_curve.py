"""Variance of the corrected gradient as a function of the coefficient c (Fig. 2, Eq. 3).

For batches b = 1..K (one pass), g_b = ∇L_b(θ) at the model and o_b = ∇L_b(θ̃) at the snapshot
model on the same inputs (BN in train mode for both by default, the snapshot's other modules in
the model's modes, the RNG state replayed so stochastic layers draw the same masks). AGENT's
corrected gradient is

    ĝ_b(c) = g_b - c·o_b + c·g̃,        g̃ = Σ_b n_b o_b / Σ_b n_b (full gradient at θ̃),

and, the constant c·g̃ having no variance, its variance across batches is the quadratic

    Var[ĝ(c)] = V_g - 2c·C + c²·V_o,

with V_g = tr Var(g), V_o = tr Var(o), C = tr Cov(g, o): unbiased (ddof=1) over the K batches,
summed over the active coordinates, streamed in float64 (Welford-type updates of the two means,
the two sums of squared deviations and the co-moment; no gradient is stored). The minimum is at
c* = C / V_o; Var[ĝ(0)] = V_g is SGD's variance. :func:`variance_vs_c` evaluates the quadratic
on ``c_grid`` (default ``np.linspace(0, 1.5, 61)``).

:func:`empirical_variance_of_corrected` is the brute-force check: it stores every g_b and o_b,
forms the actual vectors ĝ_b(c) and returns tr Var over batches (``torch.var``, ddof=1).

Both models, ``.grad`` and the global RNG states are left bit-identical (the snapshot passes
modify neither model; randomness drawn by the ``batches`` iterator is rolled back too).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._gradients import (ActiveSet, Batches, LossFn, batch_gradient, cross_entropy_loss, empty_batches_error,
                         iterate_batches, too_few_batches_error)
from ._isolation import isolated, same_randomness, set_modes
from ._stats import CrossMoments
from ._validation import check_bn_mode, check_finite_real

__all__ = ["VarianceCurve", "variance_vs_c", "empirical_variance_of_corrected", "DEFAULT_C_GRID"]

DEFAULT_C_GRID = np.linspace(0.0, 1.5, 61)


@dataclass(frozen=True, eq=False)
class VarianceCurve:
    """Var[ĝ(c)] = var_sgd - 2c·cov + c²·var_old, tabulated in ``frame`` (columns c, variance,
    variance_ratio = variance / var_sgd).

    ``var_sgd`` = V_g = tr Var(g) (SGD's variance, c = 0), ``var_old`` = V_o = tr Var(g_old),
    ``cov`` = C = tr Cov(g, g_old), ``c_star`` = C / V_o (the minimiser; NaN if V_o = 0),
    ``full_grad_snapshot``: g̃ over the active coordinates (float64).
    """

    frame: pd.DataFrame
    c_star: float
    var_sgd: float
    cov: float
    var_old: float
    n_batches: int
    n_examples: int
    n_active: int
    n_total: int
    full_grad_snapshot: torch.Tensor

    def at(self, c: Any) -> Any:
        """Var[ĝ(c)] for a number (float) or an array of c (ndarray)."""
        arr = np.asarray(c, dtype=np.float64)
        value = self.var_sgd - 2.0 * arr * self.cov + arr * arr * self.var_old
        return float(value) if arr.ndim == 0 else value

    def ratio_at(self, c: Any) -> Any:
        """Var[ĝ(c)] / Var[g] (below 1: the correction reduces the variance)."""
        return self.at(c) / self.var_sgd

    @property
    def correlation(self) -> float:
        """C / sqrt(V_g·V_o): the trace-level correlation of g and g_old across batches."""
        den = math.sqrt(self.var_sgd * self.var_old)
        return self.cov / den if den > 0 else math.nan

    @property
    def min_variance(self) -> float:
        """Var[ĝ(c*)] = V_g - C²/V_o."""
        return self.at(self.c_star) if math.isfinite(self.c_star) else math.nan

    def __repr__(self) -> str:
        return (f"VarianceCurve(c_star={self.c_star:.6g}, var_sgd={self.var_sgd:.6g}, cov={self.cov:.6g}, "
                f"var_old={self.var_old:.6g}, n_batches={self.n_batches}, n_active={self.n_active})")


def _check_grid(c_grid: Any) -> np.ndarray:
    grid = DEFAULT_C_GRID if c_grid is None else np.asarray(c_grid, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError("c_grid: must be a non-empty sequence of finite numbers")
    return grid


def _paired(model: nn.Module, snapshot_model: nn.Module, batches: Batches, active: ActiveSet,
            loss_fn: LossFn) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    """(g_b, o_b, n_b) per batch; call inside :func:`isolated` with the modes set."""
    params = active.params_of(model)
    snap_params = active.params_of(snapshot_model, "snapshot_model")
    for x, y, n in iterate_batches(batches, "variance_vs_c"):
        g, o = same_randomness([lambda: active.flatten(batch_gradient(model, params, loss_fn, x, y)[1]),
                                lambda: active.flatten(batch_gradient(snapshot_model, snap_params, loss_fn, x, y)[1])])
        yield g, o, n


def _setup(model: nn.Module, snapshot_model: nn.Module, masks: Any, loss_fn: LossFn | None,
           bn_mode: str) -> tuple[ActiveSet, LossFn, str]:
    bn_mode = check_bn_mode(bn_mode)
    if not isinstance(snapshot_model, nn.Module):
        raise TypeError(f"snapshot_model must be a torch.nn.Module, got {type(snapshot_model).__name__}")
    active = ActiveSet(model, masks)
    active.params_of(snapshot_model, "snapshot_model")
    return active, loss_fn or cross_entropy_loss, bn_mode


def variance_vs_c(model: nn.Module, snapshot_model: nn.Module, batches: Batches, *, c_grid: Any = None,
                  full_grad_snapshot: torch.Tensor | None = None, masks: Any = None, loss_fn: LossFn | None = None,
                  bn_mode: str = "train") -> VarianceCurve:
    """The quadratic Var[ĝ(c)] from streamed traces (one pass over ``batches``, at least 2 batches).

    ``full_grad_snapshot``: g̃ as a flat vector over all trainable or only the active coordinates;
    computed in the same pass (size-weighted mean of the o_b) when not given. It does not enter the
    variance (a constant shift); it is kept on the result.
    """
    grid = _check_grid(c_grid)
    active, loss_fn, bn_mode = _setup(model, snapshot_model, masks, loss_fn, bn_mode)
    g_tilde = None if full_grad_snapshot is None else active.select(full_grad_snapshot, "full_grad_snapshot")
    moments = CrossMoments()
    acc, n_examples = None, 0
    with isolated(model, snapshot_model):
        set_modes(model, bn_mode)
        set_modes(snapshot_model, bn_mode, reference=model)
        for g, o, n in _paired(model, snapshot_model, batches, active, loss_fn):
            moments.update(g, o)
            if g_tilde is None:
                acc = o * n if acc is None else acc.add_(o, alpha=n)
            n_examples += n
    if moments.count == 0:
        raise empty_batches_error()
    if moments.count < 2:
        raise too_few_batches_error(moments.count)
    if g_tilde is None:
        g_tilde = acc / n_examples
    var_g, var_o, cov = moments.traces()
    c_star = cov / var_o if var_o > 0 else math.nan
    variance = var_g - 2.0 * grid * cov + grid * grid * var_o
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = variance / var_g
    frame = pd.DataFrame({"c": grid, "variance": variance, "variance_ratio": ratio})
    return VarianceCurve(frame=frame, c_star=c_star, var_sgd=var_g, cov=cov, var_old=var_o,
                         n_batches=moments.count, n_examples=n_examples, n_active=active.n_active,
                         n_total=active.n_total, full_grad_snapshot=g_tilde)


def empirical_variance_of_corrected(model: nn.Module, snapshot_model: nn.Module, batches: Batches, c: Any, *,
                                    full_grad_snapshot: torch.Tensor | None = None, masks: Any = None,
                                    loss_fn: LossFn | None = None, bn_mode: str = "train") -> Any:
    """tr Var over batches of the actual vectors ĝ_b(c) = g_b - c·o_b + c·g̃ (brute force: every g_b
    and o_b held in float64; one pass). ``c``: a number (returns a float) or a sequence (ndarray)."""
    scalar = isinstance(c, numbers.Real)
    cs = [check_finite_real("c", c)] if scalar else [check_finite_real("c", v) for v in np.asarray(c).reshape(-1)]
    if not cs:
        raise ValueError("c: is empty")
    active, loss_fn, bn_mode = _setup(model, snapshot_model, masks, loss_fn, bn_mode)
    g_tilde = None if full_grad_snapshot is None else active.select(full_grad_snapshot, "full_grad_snapshot")
    rows_g, rows_o, sizes = [], [], []
    with isolated(model, snapshot_model):
        set_modes(model, bn_mode)
        set_modes(snapshot_model, bn_mode, reference=model)
        for g, o, n in _paired(model, snapshot_model, batches, active, loss_fn):
            rows_g.append(g)
            rows_o.append(o)
            sizes.append(n)
    if not rows_g:
        raise empty_batches_error()
    if len(rows_g) < 2:
        raise too_few_batches_error(len(rows_g))
    G, O = torch.stack(rows_g), torch.stack(rows_o)
    if g_tilde is None:
        weights = torch.tensor(sizes, dtype=torch.float64, device=O.device)
        g_tilde = (O * weights[:, None]).sum(dim=0) / weights.sum()
    values = np.array([float(torch.var(G - v * O + v * g_tilde, dim=0, correction=1).sum()) for v in cs])
    return float(values[0]) if scalar else values
