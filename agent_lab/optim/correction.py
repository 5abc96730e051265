"""Gradient correction inside the training loop: AGENT, its baselines and MVR as a callback.

Per step, after the live backward and before the optimizer step, the callback

1. refreshes the snapshot θ̃ and the full gradient g̃ every ``refresh_every`` steps (default: one
   epoch) with one extra pass over the training set (estimating ĉ* from the per-batch losses at
   θ and the previous θ̃ in the same pass),
2. hands the raw dense gradient to a RigL-style sparsifier when a mask update is due (growth by
   |dense gradient| must not see the corrected gradient),
3. rewrites ``.grad`` with the corrected gradient ĝ = g(θ) − c·g(θ̃) + c·g̃ on the same batch (or
   MVR's estimate); the sparsifier's pre-step hook then masks ĝ, and the base optimizer steps.

The full-gradient pass reads every training example once, in a shuffled order drawn from the run's
seed and the step at which the pass runs (never in storage order: data sets may be stored sorted by
class, and one-class batches through train-mode BatchNorm bias g̃ and ĉ*), at the training batch
size, with BN in train mode as in the steps. By default the pass is augmented like the training
batches (``full_pass_augment``; A-ITOP does so): each example contributes one random augmentation,
so g̃ is an unbiased estimate of the full gradient of the augmented objective, which is what each
step's g(θ̃) estimates, and E[g(θ̃) − g̃] = 0 holds as Eq. 2 needs. ``full_pass_augment=False``
uses the clean images (A-BSR-Net). A resumed run replays its passes exactly. Every extra
forward/backward is added to ``fwd_bwd``.

Speed options (config fields; see ``GradientCorrector``): ``fused_passes`` computes each step's
training gradient and snapshot gradient in one vmap call (the loop's ``backward`` hook; the refresh
then runs first in the step, which changes nothing: it leaves the live model, its buffers and the
RNG as it found them), and pairs the refresh's passes the same way; ``c_hat_source='steps'`` takes
ĉ* from the steps' own loss pairs; ``full_pass_fraction`` < 1 estimates g̃ on the first
⌈fraction · batches⌉ batches of the shuffled pass (a random class-mixed subset, at least 2
batches). Every pass runs in the run's precision (``trainer.autocast()``).
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import torch.nn.functional as F

from ..data.full_pass import full_pass_like
from ..hooks import Batch, Callback
from .agent import GradientCorrector
from .mvr import MVR

# Optimizers that correct the gradient with a snapshot (AGENT family) and their default rule.
CORRECTOR_RULES = {"svrg": "svrg", "agent": "agent", "fixed-c": "fixed-c", "no-gamma": "no-gamma",
                   "agent-mvr": "agent", "reduce-lr": "no-gamma"}
# The correcting optimizers whose correction is a snapshot pass on the step's batch (agent-mvr's is MVR's):
# the ones the speed options (fused passes, c-hat from the steps, g-tilde on a fraction) apply to.
SNAPSHOT_CORRECTORS = tuple(name for name in CORRECTOR_RULES if name != "agent-mvr")
# Every optimizer a config may name: the base optimizers (build_optimizer), the correcting ones
# above, and MVR (STORM's recursive momentum, a correction of its own).
OPTIMIZERS = ("sgd", "adam", "svrg", "agent", "fixed-c", "no-gamma", "mvr", "agent-mvr", "reduce-lr")


class CorrectionCallback(Callback):
    name = "correction"

    def __init__(self, corrector: GradientCorrector | None, mvr: MVR | None, refresh_every: int, full_pass_loader,
                 sparsifier=None) -> None:
        self.corrector, self.mvr, self.refresh_every = corrector, mvr, refresh_every
        self.full_pass_loader = full_pass_loader
        self.sparsifier = sparsifier
        self.epoch_c_hat_star = math.nan  # ĉ* of the refresh(es) of the current epoch
        self.full_pass_fraction = 1.0
        self._refreshed_at = -1  # the step whose refresh has run (fused passes refresh in backward)

    def on_train_begin(self, trainer) -> None:
        if self.sparsifier is not None:
            for holder in (self.corrector, self.mvr):
                if holder is not None:
                    self.sparsifier.follow(holder)

    def on_epoch_begin(self, trainer) -> None:
        self.epoch_c_hat_star = math.nan

    def _batch_loss(self, trainer, batch: Batch):
        def loss_fn(model, x, y):  # the batch's own (adversarial) examples: the same for g(θ) and g(θ̃)
            with trainer.autocast():
                return trainer.objective.loss(model, Batch(x, y, batch.epoch, batch.step, batch.x_adv))[0]
        return loss_fn

    def _refresh_if_due(self, trainer) -> None:
        step = trainer.state.step
        if self.corrector is None or step % self.refresh_every != 0 or self._refreshed_at == step:
            return
        self._refreshed_at = step
        full_loss, passes = self._full_pass_objective(trainer)
        batches = self.full_pass_loader.epoch(step)
        if self.full_pass_fraction < 1.0:
            batches = itertools.islice(batches, max(2, math.ceil(self.full_pass_fraction * len(self.full_pass_loader))))
        report = self.corrector.refresh(batches, full_loss)
        trainer.count_passes(report["fwd_bwd"] * passes)
        if not math.isnan(report["c_hat_star"]):
            self.epoch_c_hat_star = report["c_hat_star"]

    def backward(self, trainer, batch: Batch):
        if self.corrector is None or not self.corrector.fused:
            return None
        self._refresh_if_due(trainer)

        def loss_and_logits(model):
            with trainer.autocast():
                return trainer.objective.loss(model, batch)

        result = self.corrector.paired_backward_(loss_and_logits)
        if result is not None:  # the snapshot's half of the paired call
            trainer.count_passes(len(batch) * trainer.objective.loss_passes_per_example)
        return result

    def before_optimizer_step(self, trainer, batch: Batch) -> None:
        loss_fn = self._batch_loss(trainer, batch)
        self._refresh_if_due(trainer)
        raw = None
        if self.sparsifier is not None and self.sparsifier.will_update():
            raw = {name: p.grad.detach().clone() for name, p in self.sparsifier.params.items() if p.grad is not None}
            self.sparsifier.record_dense_gradients(raw)
        if self.mvr is not None:
            trainer.count_passes(self.mvr.transform_(batch.x, batch.y, loss_fn) * trainer.objective.loss_passes_per_example)
            if self.mvr.lr is not None:  # STORM's adaptive step replaces the scheduled lr for this step
                for group in trainer.optimizer.param_groups:
                    group["lr"] = self.mvr.lr
        else:
            passes = self.corrector.correct_(batch.x, batch.y, loss_fn,
                                             live_loss=trainer.step_loss if self.corrector.c_hat_from_steps else None)
            trainer.count_passes(passes * trainer.objective.loss_passes_per_example)
        if raw is not None and self.corrector is not None and self.corrector.keep_dense_full_grad:
            self.sparsifier.record_corrected_gradients(self.corrector.corrected_everywhere(raw))

    def _full_pass_objective(self, trainer):
        """The loss of the full-gradient pass and its passes per example.

        Standard training: the training objective. Adversarial training: the natural loss on clean
        data by default (the paper, §4.2), or the adversarial objective with
        ``full_grad_objective='adversarial'`` (each loss evaluation then attacks the model it is
        evaluated at, from a start seeded by the batch's position in the pass).
        """
        objective = trainer.objective
        if trainer.config.adversarial == "none":
            def standard_loss(model, x, y):
                with trainer.autocast():
                    return objective.loss(model, Batch(x, y, 0, 0))[0]
            return standard_loss, 1
        if trainer.config.full_grad_objective == "clean":
            def clean_loss(model, x, y):
                with trainer.autocast():
                    return F.cross_entropy(model(x), y)
            return clean_loss, 1
        position = {"step": 0}

        def adversarial_loss(model, x, y):
            if model is trainer.model:  # the live model comes first on each batch; θ̃ reuses its seed
                position["step"] += 1
            with trainer.autocast():
                return objective.loss(model, Batch(x, y, -1 - trainer.state.step, position["step"]))[0]

        return adversarial_loss, objective.passes_per_example

    def epoch_metrics(self, trainer) -> dict[str, float]:
        if self.corrector is None:
            return {}
        return {"c": float(self.corrector.c), "c_hat_ema": float(self.corrector.c_hat),
                "c_hat_star": self.epoch_c_hat_star}

    def state_dict(self) -> dict[str, Any]:
        return {"corrector": None if self.corrector is None else self.corrector.state_dict(),
                "mvr": None if self.mvr is None else self.mvr.state_dict(), "epoch_c_hat_star": self.epoch_c_hat_star}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.corrector is not None:
            self.corrector.load_state_dict(state["corrector"])
        if self.mvr is not None:
            self.mvr.load_state_dict(state["mvr"])
        self.epoch_c_hat_star = state["epoch_c_hat_star"]


def build_correction(config, trainer, sparsifier=None) -> CorrectionCallback | None:
    """The correction callback ``config.optimizer`` asks for (None for plain SGD/Adam)."""
    if config.optimizer not in CORRECTOR_RULES and config.optimizer != "mvr":
        return None
    corrector = None
    if config.optimizer in CORRECTOR_RULES:
        corrector = GradientCorrector(trainer.model, rule=config.coef_rule or CORRECTOR_RULES[config.optimizer],
                                      gamma=config.gamma, alpha=config.alpha, c0=config.c0, fixed_c=config.fixed_c)
    mvr = None
    if config.optimizer in ("mvr", "agent-mvr"):
        mvr = MVR(trainer.model, a=config.mvr_a, adaptive=config.mvr_adaptive, corrector=corrector)
    full_pass = None
    if corrector is not None:  # in memory or streamed (ImageNet), this rank's shard of every batch
        full_pass = full_pass_like(trainer.train_loader, config.batch_size, seed=config.seed,
                                   augment=config.full_pass_augment)
    refresh_every = config.refresh_every or len(trainer.train_loader)
    callback = CorrectionCallback(corrector, mvr, refresh_every, full_pass, sparsifier)
    if corrector is not None:
        corrector.keep_dense_full_grad = config.growth == "corrected-gradient"
        corrector.fused = config.fused_passes
        corrector.c_hat_from_steps = config.c_hat_source == "steps"
        callback.full_pass_fraction = config.full_pass_fraction
    return callback
