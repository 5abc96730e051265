"""Gradient diagnostics of (sparse) models: variance, correlation and AGENT's coefficient.

* :func:`gradient_variance` -- variance across minibatches of the minibatch gradient (Fig. 1a,
  App. C.1), streamed in float64, with the weight-perturbation replicates of the paper;
  :func:`gradient_variance_brute_force` is the stored-gradients reference.
* :func:`per_sample_gradient_variance` -- variance of single-example gradients (``torch.func``).
* :func:`gradient_correlation` -- Pearson correlation between the full gradient at θ and at
  θ + N(0, σ²) (Table 7, App. B.6); :func:`pearson`.
* :func:`full_gradient`, :func:`snapshot_correlation` (Fig. 26's "true" correlation) and
  :func:`loss_based_c_star` (Eq. 4, AGENT's loss regression).
* :func:`variance_vs_c` -- Var[g - c·g_old + c·g̃] = V_g - 2cC + c²V_o (Fig. 2) with c* = C/V_o;
  :func:`empirical_variance_of_corrected` checks it by brute force; :func:`plot_variance_vs_c`.

* :class:`~agent_lab.diagnostics.in_training.DiagnosticsCallback` (``RunConfig.diagnostics``).

The drivers that train or read stored runs to measure them live in :mod:`agent_lab.experiments`
(``sparsity_sweep``, ``diagnose_run``, ``snapshot_of_run``).

Conventions. ``loss_fn(model, x, y)`` returns the batch's mean loss as a scalar tensor (default:
cross-entropy). Gradients cover every trainable parameter, flattened and concatenated in
``model.named_parameters()`` order, restricted with ``masks`` (``{name: bool tensor}``, a
``MaskState`` or a ``Sparsifier``) to active coordinates. ``batches`` is an iterable of
``(x, y)`` pairs or a callable returning one (e.g. ``lambda: full_pass_loader(images, labels, 128,
seed=0).epoch(0)``, :func:`agent_lab.data.full_pass_loader`); every diagnostic makes exactly one pass
over it, so a one-shot iterator is enough. Batches must be class-mixed (never a data set's storage
order, which may be sorted by class); batches that look sorted by class raise a
:class:`~agent_lab.data.ClassSortedBatchesWarning`. ``bn_mode`` puts BatchNorm
layers in ``"train"`` (batch statistics, the default, as in training) or ``"eval"`` mode, or
``"keep"``s them. Every diagnostic leaves the model(s) bit-identical -- parameters, buffers,
train/eval flags of every submodule, ``.grad`` -- and the global RNG states (torch, CUDA, Python,
NumPy); perturbations come from a private generator seeded by ``seed`` and are applied to copies.
"""
from ._gradients import cross_entropy_loss
from .correlation import CorrelationResult, gradient_correlation, pearson
from .full_gradient import full_gradient, loss_based_c_star, snapshot_correlation
from .per_sample import PerSampleVarianceResult, per_sample_gradient_variance
from .plotting import plot_c_hat_vs_correlation, plot_variance_vs_c
from .variance import VarianceResult, gradient_variance, gradient_variance_brute_force
from .variance_curve import DEFAULT_C_GRID, VarianceCurve, empirical_variance_of_corrected, variance_vs_c

__all__ = [
    "plot_c_hat_vs_correlation",
    "CorrelationResult",
    "DEFAULT_C_GRID",
    "PerSampleVarianceResult",
    "VarianceCurve",
    "VarianceResult",
    "cross_entropy_loss",
    "empirical_variance_of_corrected",
    "full_gradient",
    "gradient_correlation",
    "gradient_variance",
    "gradient_variance_brute_force",
    "loss_based_c_star",
    "pearson",
    "per_sample_gradient_variance",
    "plot_variance_vs_c",
    "snapshot_correlation",
    "variance_vs_c",
]
