"""Gradient correlation under weight perturbation (Table 7, Fig. 1b, App. B.6/C.1).

Protocol: the full gradient ``∇F(θ) = Σ_b n_b ∇L_b(θ) / Σ_b n_b`` over all of ``batches``
(``L_b`` the batch's mean loss, ``n_b`` its size; float64) at the weights θ and at
θ + σ·ε_r, ε_r ~ N(0, I) (σ = 0.015 in the paper), for ``replicates`` independent draws
(3 in the paper). ε_r covers every trainable parameter ("Gaussian perturbations to all the
weights"); with ``active_only`` it is zero at masked entries, so masked weights stay 0. Each
replicate reports the Pearson correlation

    r = Σ_j (a_j - ā)(b_j - b̄) / sqrt(Σ_j (a_j - ā)² · Σ_j (b_j - b̄)²)

of a = ∇F(θ) and b = ∇F(θ + σε_r) over the active coordinates (all trainable coordinates
without ``masks``); the result has the mean and sample std (ddof=1; 0.0 for one replicate) over
replicates and the per-replicate values.

One pass over ``batches``: every batch is evaluated at θ (once: the clean gradient is computed
once) and at each perturbed deep copy, on the same inputs, replaying the RNG state so stochastic
layers draw the same masks. With σ = 0 the perturbed model equals θ: one copy is evaluated and
its value stands for every replicate; the correlation is then exactly 1.0 (equal float64
vectors, see :func:`pearson`). Perturbations come from a private generator seeded by ``seed``;
the model, its ``.grad`` and the global RNG states are left bit-identical.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from ._gradients import ActiveSet, Batches, LossFn, cross_entropy_loss
from ._isolation import isolated, perturbed_copies, set_modes
from ._stats import pearson, spread
from ._validation import check_bn_mode, check_nonnegative, check_replicates, check_seed
from .full_gradient import _full_gradients

__all__ = ["CorrelationResult", "gradient_correlation", "pearson"]


@dataclass(frozen=True)
class CorrelationResult:
    """Pearson correlation between the clean and perturbed full gradients, over replicates."""

    mean: float
    std: float
    values: tuple[float, ...]
    sigma: float
    replicates: int
    active_only: bool
    n_active: int
    n_total: int
    n_batches: int
    n_examples: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gradient_correlation(model: nn.Module, batches: Batches, *, sigma: float = 0.015, replicates: int = 3,
                         active_only: bool = False, masks: Any = None, loss_fn: LossFn | None = None,
                         bn_mode: str = "train", seed: int = 0) -> CorrelationResult:
    """Correlation of ∇F(θ) with ∇F(θ + σε) over ``replicates`` draws (one pass over ``batches``)."""
    sigma = check_nonnegative("sigma", sigma)
    replicates = check_replicates(replicates)
    bn_mode = check_bn_mode(bn_mode)
    seed = check_seed(seed)
    loss_fn = loss_fn or cross_entropy_loss
    active = ActiveSet(model, masks)
    with isolated(model):
        copies = perturbed_copies(model, active, sigma, 1 if sigma == 0.0 else replicates, seed, bool(active_only))
        set_modes(model, bn_mode)
        for c in copies:
            set_modes(c, bn_mode, reference=model)
        grads, n_batches, n_examples = _full_gradients([model, *copies], ["model"] + ["copy"] * len(copies),
                                                       batches, active, loss_fn, "gradient_correlation")
    clean = grads[0]
    values = [pearson(clean, g) for g in grads[1:]]
    if len(values) == 1:
        values = values * replicates
    mean, std = spread(values)
    return CorrelationResult(mean=mean, std=std, values=tuple(values), sigma=sigma, replicates=replicates,
                             active_only=bool(active_only), n_active=active.n_active, n_total=active.n_total,
                             n_batches=n_batches, n_examples=n_examples)
