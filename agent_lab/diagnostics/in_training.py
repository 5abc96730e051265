"""Diagnostics during training (``RunConfig.diagnostics``): history columns, side-effect free.

* ``correlation`` (correcting optimizers): at every refresh after the first, ``grad_corr`` is the
  Pearson correlation between the new full gradient g̃ at the current weights θ and the full
  gradient at the previous snapshot θ̃ (the previous epoch's weights), both over the *same*
  batches of the refresh pass (same order, same augmentation: two passes with different draws
  would mostly measure the draws), over the coordinates that were unmasked at both refreshes -- the
  "true correlation" of Fig. 26, next to the loss-based ĉ* of the same pass (``c_hat_star``), which
  regresses the losses of the same batches at θ and θ̃. The ĉ* pass at θ̃ then takes gradients
  too: one backward per example more, within the pass ``fwd_bwd`` already counts for it.
* ``variance``: at the last step of every epoch, on the first ``diagnostics_batches`` training
  batches of that epoch (same augmentation as training, replayed from the loader, BN in train
  mode): ``grad_var`` (mean over active coordinates of the per-coordinate variance across
  minibatches) and ``grad_var_trace``; with a corrector that has a snapshot also
  ``var_ratio`` = Var[ĝ(c)]/Var[g] at the applied c and ``c_var_opt`` = Cov(g, g_old)/Var(g_old),
  the variance-minimising coefficient (Fig. 2). Costs K batches (2K with a snapshot) of passes,
  added to ``fwd_bwd``.
* ``all``: both.

Neither changes the training run: parameters, buffers, modes, ``.grad`` and RNG streams are left
as they were (a run with diagnostics has the same losses and accuracies as one without).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..hooks import Batch, Callback
from .correlation import pearson
from .variance import gradient_variance
from .variance_curve import variance_vs_c

DIAGNOSTICS = ("none", "correlation", "variance", "all")


class DiagnosticsCallback(Callback):
    name = "diagnostics"

    def __init__(self, what: str, corrector=None, sparsifier=None, batches: int = 20, refresh_every: int = 1) -> None:
        if what not in DIAGNOSTICS:
            raise ValueError(f"diagnostics: {what!r} is invalid; valid choices: {', '.join(DIAGNOSTICS)}")
        self.correlation = what in ("correlation", "all")
        self.variance = what in ("variance", "all")
        if self.correlation and corrector is None:
            raise ValueError("diagnostics: 'correlation' needs a correcting optimizer (it compares full gradients)")
        self.corrector, self.sparsifier, self.batches = corrector, sparsifier, int(batches)
        self.refresh_every = int(refresh_every)
        # the correctable masks as the last refresh left them (copies: masks move later)
        self._previous_masks: list[torch.Tensor] | None = None
        self._metrics: dict[str, float] = {}
        self._hooked = False

    def on_train_begin(self, trainer) -> None:
        if self.correlation and not self._hooked:
            self.corrector.snapshot_gradient_on_refresh = True
            self.corrector.register_refresh_hook(self._after_refresh)
            self._hooked = True

    def on_epoch_begin(self, trainer) -> None:
        self._metrics = {}

    def _after_refresh(self, corrector, report) -> None:
        new, new_ok = corrector.full_gradient_state()
        old = report.get("snapshot_gradient")
        if self._previous_masks is not None and old is not None:
            keep = [a & b for a, b in zip(self._previous_masks, new_ok)]
            self._metrics["grad_corr"] = pearson(torch.cat([g[k].double() for g, k in zip(old, keep)]),
                                                 torch.cat([g[k].double() for g, k in zip(new, keep)]))
        self._previous_masks = new_ok

    def after_optimizer_step(self, trainer, batch: Batch) -> None:
        if self.variance and batch.step == len(trainer.train_loader) - 1:
            self._measure_variance(trainer, batch.epoch)

    def _measure_variance(self, trainer, epoch: int) -> None:
        loader = trainer.train_loader
        k = min(self.batches, len(loader))
        if k < 2:
            return
        batches = [loader.batch(epoch, s) for s in range(k)]
        examples = sum(len(y) for _, y in batches)
        masks = self.sparsifier
        snapshot = None if self.corrector is None else self.corrector.snapshot_model
        if snapshot is None:
            result = gradient_variance(trainer.model, batches, masks=masks)
            self._metrics.update(grad_var=result.mean_variance, grad_var_trace=result.trace)
            trainer.count_passes(examples)
            return
        curve = variance_vs_c(trainer.model, snapshot, batches, masks=masks, c_grid=[0.0])
        self._metrics.update(grad_var=curve.var_sgd / curve.n_active, grad_var_trace=curve.var_sgd,
                             var_ratio=float(curve.ratio_at(self.corrector.c)), c_var_opt=curve.c_star)
        trainer.count_passes(2 * examples)

    def epoch_metrics(self, trainer) -> dict[str, float]:
        columns = (["grad_corr"] if self.correlation else []) + (
            ["grad_var", "grad_var_trace"] + (["var_ratio", "c_var_opt"] if self.corrector is not None else [])
            if self.variance else [])
        return {name: self._metrics.get(name, math.nan) for name in columns}

    def state_dict(self) -> dict[str, Any]:
        return {"previous_masks": self._previous_masks, "metrics": dict(self._metrics)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._previous_masks = state.get("previous_masks")
        self._metrics = dict(state.get("metrics", {}))


def build_diagnostics(config, trainer, correction=None, sparsifier=None) -> DiagnosticsCallback | None:
    """The diagnostics callback of ``config.diagnostics`` (None for ``none``); ``correction`` is the
    run's CorrectionCallback, if any. Place it before the correction callback."""
    if config.diagnostics == "none":
        return None
    corrector = None if correction is None else correction.corrector
    refresh_every = 1 if correction is None else correction.refresh_every
    return DiagnosticsCallback(config.diagnostics, corrector=corrector, sparsifier=sparsifier,
                               batches=config.diagnostics_batches, refresh_every=refresh_every)
