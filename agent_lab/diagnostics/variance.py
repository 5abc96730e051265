"""Gradient variance across minibatches (Fig. 1a, App. C.1).

For batches b = 1..K (each once, one pass) the mean-loss minibatch gradient g_b is computed (BN
in train mode by default, as in training). Per active coordinate j the unbiased sample variance
over batches is

    s²_j = Σ_b (g_bj - ḡ_j)² / (K - 1),      ḡ_j = Σ_b g_bj / K,

accumulated in float64 with Welford's streaming update (only the running mean and the running
sum of squared deviations are held, never the K gradients). Reported: ``mean_variance = mean_j
s²_j`` and ``trace = Σ_j s²_j`` over the active coordinates (every trainable coordinate without
``masks``; masked-out weight entries are excluded). Batches count equally whatever their size,
so prefer batches of one size (drop the last partial batch).

Replicates (the paper's protocol around a trained checkpoint: "add small perturbations to the
weights ... three replicates"): replicate r evaluates the variance at θ + σ·ε_r, ε_r ~ N(0, I)
drawn from a private generator seeded by ``seed`` for every trainable parameter (with
``active_only``: zero at masked entries, so masked weights stay 0), on a deep copy of the model.
All replicates see the same batches: each batch is evaluated at every replicate in the same pass,
replaying the RNG state so stochastic layers draw the same masks. The result gives the mean over
replicates and their sample standard deviation (ddof=1; 0.0 with one replicate). With σ = 0
every replicate is the unperturbed model: it is evaluated once, and that value stands for all.

:func:`gradient_variance_brute_force` computes the same quantities by stacking every g_b in
float64 and calling ``torch.var`` -- a reference for tests and small models.

The model (parameters, buffers, per-module modes, ``.grad``) and the global RNG states are left
bit-identical; randomness drawn by the ``batches`` iterator is rolled back too.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn

from ._gradients import (ActiveSet, Batches, LossFn, batch_gradient, cross_entropy_loss, empty_batches_error,
                         iterate_batches, too_few_batches_error)
from ._isolation import isolated, perturbed_copies, same_randomness, set_modes
from ._stats import Moments, spread
from ._validation import check_bn_mode, check_nonnegative, check_replicates, check_seed

__all__ = ["VarianceResult", "gradient_variance", "gradient_variance_brute_force"]


@dataclass(frozen=True)
class VarianceResult:
    """Gradient variance across minibatches, mean ± std over replicates.

    ``mean_variance``/``trace``: mean over replicates of the per-coordinate variance averaged /
    summed over active coordinates; ``*_std``: their sample std over replicates (0.0 for one);
    ``per_replicate_*``: the replicate values.
    """

    mean_variance: float
    mean_variance_std: float
    trace: float
    trace_std: float
    n_batches: int
    n_examples: int
    n_active: int
    n_total: int
    replicates: int
    perturb_sigma: float
    per_replicate_mean_variance: tuple[float, ...]
    per_replicate_trace: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Stacked:
    """Brute-force accumulator: holds every gradient, ``torch.var`` at the end."""

    def __init__(self) -> None:
        self.rows: list[torch.Tensor] = []

    @property
    def count(self) -> int:
        return len(self.rows)

    def update(self, v: torch.Tensor) -> None:
        self.rows.append(v.to(torch.float64).clone())

    def variance(self) -> torch.Tensor:
        return torch.var(torch.stack(self.rows), dim=0, correction=1)


def _variance(model: nn.Module, batches: Batches, *, loss_fn: LossFn | None, masks: Any, bn_mode: str,
              perturb_sigma: float, replicates: int, active_only: bool, seed: int,
              accumulator: Callable[[], Any]) -> VarianceResult:
    bn_mode = check_bn_mode(bn_mode)
    sigma = check_nonnegative("perturb_sigma", perturb_sigma)
    replicates = check_replicates(replicates)
    seed = check_seed(seed)
    loss_fn = loss_fn or cross_entropy_loss
    active = ActiveSet(model, masks)
    with isolated(model):
        models = [model] if sigma == 0.0 else perturbed_copies(model, active, sigma, replicates, seed,
                                                                bool(active_only))
        for m in models:
            set_modes(m, bn_mode, reference=model)
        params = [active.params_of(m) for m in models]
        accs = [accumulator() for _ in models]
        n_examples = 0
        for x, y, n in iterate_batches(batches, "gradient_variance"):
            passes = [lambda m=m, ps=ps: active.flatten(batch_gradient(m, ps, loss_fn, x, y)[1])
                      for m, ps in zip(models, params)]
            for acc, g in zip(accs, same_randomness(passes)):
                acc.update(g)
            n_examples += n
    k = accs[0].count
    if k == 0:
        raise empty_batches_error()
    if k < 2:
        raise too_few_batches_error(k)
    means, traces = [], []
    for acc in accs:
        var = acc.variance()
        traces.append(float(var.sum()))
        means.append(traces[-1] / active.n_active)
    if len(accs) == 1:
        means, traces = means * replicates, traces * replicates
    mean_variance, mean_variance_std = spread(means)
    trace, trace_std = spread(traces)
    return VarianceResult(mean_variance=mean_variance, mean_variance_std=mean_variance_std, trace=trace,
                          trace_std=trace_std, n_batches=k, n_examples=n_examples, n_active=active.n_active,
                          n_total=active.n_total, replicates=replicates, perturb_sigma=sigma,
                          per_replicate_mean_variance=tuple(means), per_replicate_trace=tuple(traces))


def gradient_variance(model: nn.Module, batches: Batches, *, loss_fn: LossFn | None = None, masks: Any = None,
                      bn_mode: str = "train", perturb_sigma: float = 0.0, replicates: int = 1,
                      active_only: bool = False, seed: int = 0) -> VarianceResult:
    """Variance across minibatches of the minibatch gradient, streamed in float64 (one pass).

    ``batches``: an iterable of ``(x, y)`` or a callable returning one (one pass, at least 2
    batches). ``loss_fn(model, x, y)``: mean loss (default: cross-entropy). ``masks``: only active
    coordinates count. ``bn_mode``: ``"train"`` (batch statistics), ``"eval"`` or ``"keep"``.
    ``perturb_sigma``/``replicates``/``active_only``/``seed``: the perturbation protocol (module
    docstring).
    """
    return _variance(model, batches, loss_fn=loss_fn, masks=masks, bn_mode=bn_mode, perturb_sigma=perturb_sigma,
                     replicates=replicates, active_only=active_only, seed=seed, accumulator=Moments)


def gradient_variance_brute_force(model: nn.Module, batches: Batches, *, loss_fn: LossFn | None = None,
                                  masks: Any = None, bn_mode: str = "train", perturb_sigma: float = 0.0,
                                  replicates: int = 1, active_only: bool = False, seed: int = 0) -> VarianceResult:
    """:func:`gradient_variance` computed by holding all K gradients (float64) and ``torch.var``."""
    return _variance(model, batches, loss_fn=loss_fn, masks=masks, bn_mode=bn_mode, perturb_sigma=perturb_sigma,
                     replicates=replicates, active_only=active_only, seed=seed, accumulator=_Stacked)
