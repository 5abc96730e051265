"""Full gradients, the snapshot ("true") correlation and the loss-based ĉ* (App. B.7, Fig. 26).

* ``full_gradient``: ``∇F(θ) = Σ_b n_b ∇L_b(θ) / Σ_b n_b`` over all of ``batches`` (``L_b`` the
  batch's mean loss, ``n_b`` its size), accumulated in float64, returned as a flat float64 vector
  over the active coordinates (all trainable coordinates without ``masks``).
* ``snapshot_correlation``: the Pearson correlation between ``∇F(θ)`` (current model) and
  ``∇F(θ̃)`` (snapshot model), both on the same batches -- the "correlation between the gradient
  of current weights and the gradient of previous epoch weights" of Fig. 26.
* ``loss_based_c_star``: AGENT's estimate (Eq. 4) ``ĉ* = Cov(L_cur, L_old) / Var(L_old)`` with
  sample (ddof=1) statistics in float64 over the per-batch mean losses at θ (``L_cur``) and θ̃
  (``L_old``) on the same batches -- the formula :class:`~agent_lab.optim.GradientCorrector`
  applies at a refresh; NaN when undefined (fewer than 2 batches, ``Var(L_old) == 0``, or
  non-finite losses).

``batches`` must be class-mixed (shuffled, at the training batch size when BN runs in train mode:
:func:`agent_lab.data.full_pass_loader`); class-sorted batches raise a
:class:`~agent_lab.data.ClassSortedBatchesWarning`. One pass over ``batches``: each batch is
evaluated at both models on the same inputs, and the second pass of a batch replays the first
pass's RNG state (stochastic layers draw the same masks).
Modes: the snapshot takes the model's per-module train/eval flags, then BatchNorm layers follow
``bn_mode`` (``"train"``: batch statistics, as in training; ``"eval"``: running statistics;
``"keep"``: as they are). Both models, ``.grad`` and the global RNG states are left exactly as
they were (randomness drawn by the ``batches`` iterator is rolled back too).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..optim.agent import _loss_regression
from ._gradients import (ActiveSet, Batches, LossFn, batch_gradient, batch_loss, cross_entropy_loss,
                         empty_batches_error, iterate_batches)
from ._isolation import isolated, same_randomness, set_modes
from ._stats import pearson
from ._validation import check_bn_mode

__all__ = ["full_gradient", "snapshot_correlation", "loss_based_c_star"]


def _full_gradients(models: Sequence[nn.Module], labels: Sequence[str], batches: Batches, active: ActiveSet,
                    loss_fn: LossFn, where: str) -> tuple[list[torch.Tensor], int, int]:
    """Size-weighted mean batch gradients of each of ``models`` over one pass (same inputs for all).

    Returns (float64 active vectors, number of batches, number of examples). Modes must be set.
    """
    params = [active.params_of(m, what) for m, what in zip(models, labels)]
    sums: list[torch.Tensor | None] = [None] * len(models)
    n_batches = n_examples = 0
    for x, y, n in iterate_batches(batches, where):
        passes = [lambda m=m, ps=ps: active.flatten(batch_gradient(m, ps, loss_fn, x, y)[1])
                  for m, ps in zip(models, params)]
        for i, g in enumerate(same_randomness(passes)):
            if sums[i] is None:
                sums[i] = g.mul_(n)
            else:
                sums[i].add_(g, alpha=n)
        n_batches += 1
        n_examples += n
    if n_batches == 0:
        raise empty_batches_error()
    return [s.div_(n_examples) for s in sums], n_batches, n_examples


def full_gradient(model: nn.Module, batches: Batches, *, loss_fn: LossFn | None = None, masks: Any = None,
                  bn_mode: str = "train") -> torch.Tensor:
    """The full gradient over ``batches`` (one pass) as a flat float64 vector on the model's device,
    over the active coordinates when ``masks`` is given."""
    bn_mode = check_bn_mode(bn_mode)
    loss_fn = loss_fn or cross_entropy_loss
    active = ActiveSet(model, masks)
    with isolated(model):
        set_modes(model, bn_mode)
        (grad,), _, _ = _full_gradients([model], ["model"], batches, active, loss_fn, "full_gradient")
    return grad


def snapshot_correlation(model: nn.Module, snapshot_model: nn.Module, batches: Batches, *,
                         loss_fn: LossFn | None = None, masks: Any = None, bn_mode: str = "train") -> float:
    """Pearson correlation of the full gradients at ``model`` and at ``snapshot_model`` (one pass;
    over the active coordinates of ``masks`` when given)."""
    bn_mode = check_bn_mode(bn_mode)
    loss_fn = loss_fn or cross_entropy_loss
    active = ActiveSet(model, masks)
    active.params_of(snapshot_model, "snapshot_model")
    with isolated(model, snapshot_model):
        set_modes(model, bn_mode)
        set_modes(snapshot_model, bn_mode, reference=model)
        (g, g_old), _, _ = _full_gradients([model, snapshot_model], ["model", "snapshot_model"], batches,
                                           active, loss_fn, "snapshot_correlation")
    return pearson(g, g_old)


def loss_based_c_star(model: nn.Module, snapshot_model: nn.Module, batches: Batches, *,
                      loss_fn: LossFn | None = None, bn_mode: str = "train") -> float:
    """``Cov(L_cur, L_old) / Var(L_old)`` (ddof=1, float64) over per-batch mean losses (forward only,
    one pass); NaN when undefined."""
    bn_mode = check_bn_mode(bn_mode)
    loss_fn = loss_fn or cross_entropy_loss
    if not isinstance(snapshot_model, nn.Module):
        raise TypeError(f"snapshot_model must be a torch.nn.Module, got {type(snapshot_model).__name__}")
    current: list[torch.Tensor] = []
    old: list[torch.Tensor] = []
    with isolated(model, snapshot_model):
        set_modes(model, bn_mode)
        set_modes(snapshot_model, bn_mode, reference=model)
        for x, y, _ in iterate_batches(batches, "loss_based_c_star"):
            cur, prev = same_randomness([lambda: batch_loss(model, loss_fn, x, y),
                                         lambda: batch_loss(snapshot_model, loss_fn, x, y)])
            current.append(cur)
            old.append(prev)
    if not current:
        raise empty_batches_error()
    return _loss_regression(current, old)
