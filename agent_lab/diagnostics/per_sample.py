"""Per-example gradient variance with ``torch.func`` (models without batch statistics).

For examples i = 1..n of ``(x, y)`` the single-example gradient g_i = ∇ℓ(θ; x_i, y_i) is computed
with ``torch.func.vmap(torch.func.grad(...))`` over ``functional_call`` (chunks of ``chunk_size``
examples), and per active coordinate j the unbiased sample variance

    s²_j = Σ_i (g_ij - ḡ_j)² / (n - 1)

is accumulated in float64 (Chan's pairwise update across chunks). Reported: ``mean_variance``
(mean of s²_j over active coordinates) and ``trace`` (their sum). The variance of a mean over a
batch of B i.i.d.-sampled examples is about s²/B.

``loss_fn_single(model, x, y)`` follows the package's loss convention, called with a batch of
one example (leading dimension 1); the default is cross-entropy. BatchNorm layers in train mode
make the per-example gradient undefined (batch statistics couple the examples), so such models
are refused; put them in eval mode (running statistics) to use this. Modes are used as they are;
dropout draws different masks per example (from the global RNG, restored afterwards). The model,
its ``.grad`` and the global RNG states are left bit-identical.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from ..optim.agent import _scalar_loss
from ._gradients import ActiveSet, LossFn, cross_entropy_loss
from ._isolation import isolated
from ._stats import Moments
from ._validation import check_replicates

__all__ = ["PerSampleVarianceResult", "per_sample_gradient_variance"]


@dataclass(frozen=True)
class PerSampleVarianceResult:
    """Variance of single-example gradients: mean and sum over active coordinates."""

    mean_variance: float
    trace: float
    n_examples: int
    n_active: int
    n_total: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _LossModule(nn.Module):
    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, x: Any, y: Any) -> torch.Tensor:
        return _scalar_loss(self.loss_fn(self.model, x, y))


def per_sample_gradient_variance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                                 loss_fn_single: LossFn | None = None, masks: Any = None,
                                 chunk_size: int = 64) -> PerSampleVarianceResult:
    """Per-coordinate variance (ddof=1, float64) of the single-example gradients of ``(x, y)``."""
    training_bn = [name or type(model).__name__ for name, m in model.named_modules()
                   if isinstance(m, _BatchNorm) and m.training]
    if training_bn:
        raise ValueError(f"model: {type(model).__name__} has BatchNorm modules in train mode "
                         f"({', '.join(training_bn[:4])}{', ...' if len(training_bn) > 4 else ''}); per-sample "
                         f"gradients are undefined with batch statistics -- call .eval() on them first")
    chunk_size = check_replicates(chunk_size, "chunk_size")
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.dim() == 0 or y.dim() == 0:
        raise ValueError("x, y: must be tensors with a leading example dimension")
    n = int(x.shape[0])
    if int(y.shape[0]) != n:
        raise ValueError(f"x, y: {n} inputs but {int(y.shape[0])} targets")
    if n < 2:
        raise ValueError(f"x: a sample variance over examples needs at least 2 examples, got {n}")
    active = ActiveSet(model, masks)
    loss_fn = loss_fn_single or cross_entropy_loss
    wrapper = _LossModule(model, loss_fn)
    names = ["model." + name for name in active.names]

    def single_loss(params: tuple[torch.Tensor, ...], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return functional_call(wrapper, dict(zip(names, params)), (xi.unsqueeze(0), yi.unsqueeze(0)))

    per_example = vmap(grad(single_loss), in_dims=(None, 0, 0), randomness="different")
    moments = Moments()
    with isolated(model):
        params = tuple(p.detach() for p in active.params_of(model))
        for start in range(0, n, chunk_size):
            xs, ys = x[start:start + chunk_size], y[start:start + chunk_size]
            grads = per_example(params, xs, ys)
            m = int(xs.shape[0])
            parts = []
            for g, mask in zip(grads, active.masks):
                flat = g.detach().reshape(m, -1).to(device=active.device, dtype=torch.float64)
                parts.append(flat if mask is None else flat[:, mask.to(flat.device)])
            moments.update_block(torch.cat(parts, dim=1))
    var = moments.variance()
    trace = float(var.sum())
    return PerSampleVarianceResult(mean_variance=trace / active.n_active, trace=trace, n_examples=n,
                                   n_active=active.n_active, n_total=active.n_total)
