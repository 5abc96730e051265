"""Adversarial training objectives for the training loop: AT (Madry) and TRADES.

Both attack once per training batch in :meth:`prepare` and keep the adversarial inputs in the
batch (``batch.x_adv``), so AGENT's old gradient and MVR's previous gradient are taken on the
*same* adversarial examples as the training gradient. The attack's random start comes from a
private generator seeded by ``(seed, epoch, step)``: a resumed run replays it, and the global RNG
stream of the training run is untouched.

``train_acc`` in the history is the accuracy of the logits ``loss`` returns: adversarial logits
for AT, clean logits for TRADES.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..hooks import Batch, Objective
from ..distributed import global_rows, is_distributed
from .attacks import PGD, generator_for


class AdversarialObjective(Objective):
    """Shared part: attack once per batch (``prepare``), deterministically from (seed, epoch, step)."""

    def __init__(self, attack: PGD, seed: int = 0) -> None:
        self.attack, self.seed = attack, int(seed)

    def prepare(self, model: torch.nn.Module, batch: Batch) -> Batch:
        if batch.x_adv is None:
            generator = generator_for(batch.x.device, self.seed, batch.epoch, batch.step)
            rows = global_rows(len(batch.y), batch.x.device) if is_distributed() else None  # a rank's slice
            batch.x_adv = self.attack.perturb(model, batch.x, batch.y, generator=generator, rows=rows)
        return batch


class MadryAT(AdversarialObjective):
    """Madry et al. (2018): the mean cross-entropy on PGD examples (cross-entropy attack)."""

    def __init__(self, attack: PGD, seed: int = 0) -> None:
        if attack.loss != "ce":
            raise ValueError(f"attack.loss: {attack.loss!r} is invalid for AT; expected 'ce'")
        super().__init__(attack, seed)
        self.passes_per_example = 1 + attack.passes_per_example

    def loss(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.prepare(model, batch)
        logits = model(batch.x_adv)
        return F.cross_entropy(logits, batch.y), logits


class TRADES(AdversarialObjective):
    """Zhang et al. (2019): CE(f(x), y) + β · KL(f(x) ‖ f(x_adv)) (KL summed over classes, mean over
    the batch), with x_adv from a KL attack started at x + 0.001·N(0,1).

    As in the official code, the clean and the adversarial forwards are separate train-mode passes
    (BatchNorm normalises each with its own batch statistics; running statistics see both) and the
    clean distribution in the KL term is not detached. With ``beta == 0`` the robust term is exactly
    zero: unless ``skip_zero_beta=False``, the attack and the adversarial forward are skipped, and the
    run is standard training.
    """

    def __init__(self, attack: PGD, beta: float = 6.0, seed: int = 0, *, skip_zero_beta: bool = True) -> None:
        if attack.loss != "kl":
            raise ValueError(f"attack.loss: {attack.loss!r} is invalid for TRADES; expected 'kl'")
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not beta >= 0 or beta == float("inf"):
            raise ValueError(f"beta: {beta!r} is invalid; expected a finite number >= 0")
        super().__init__(attack, seed)
        self.beta = float(beta)
        self.skip = skip_zero_beta and self.beta == 0
        self.loss_passes_per_example = 1 if self.skip else 2
        self.passes_per_example = self.loss_passes_per_example + (0 if self.skip else attack.passes_per_example)

    def prepare(self, model: torch.nn.Module, batch: Batch) -> Batch:
        return batch if self.skip else super().prepare(model, batch)

    def loss(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.prepare(model, batch)
        logits = model(batch.x)
        natural = F.cross_entropy(logits, batch.y)
        if self.skip:
            return natural, logits
        adv_logits = model(batch.x_adv)
        robust = F.kl_div(F.log_softmax(adv_logits, dim=1), F.softmax(logits, dim=1), reduction="batchmean")
        return natural + self.beta * robust, logits


def training_attack(config) -> PGD:
    """The training attack of ``config`` (cross-entropy for AT, KL from a small normal start for TRADES)."""
    trades = config.adversarial == "trades"
    return PGD(epsilon=config.epsilon, step_size=config.attack_step, steps=config.attack_steps,
               random_start="normal" if trades else "uniform", loss="kl" if trades else "ce",
               bn_mode=config.attack_bn)


# The training objectives by ``config.adversarial`` name: a new objective is a class and one line here.
OBJECTIVES: dict[str, Callable[[Any], Objective]] = {
    "none": lambda config: Objective(),
    "at": lambda config: MadryAT(training_attack(config), seed=config.seed),
    "trades": lambda config: TRADES(training_attack(config), beta=config.trades_beta, seed=config.seed),
}


def build_objective(config) -> Objective:
    """The training objective of ``config.adversarial`` (one of :data:`OBJECTIVES`)."""
    return OBJECTIVES[config.adversarial](config)
