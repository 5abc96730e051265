"""Learning-rate schedules as multipliers of the base lr, evaluated at fractional epochs.

The training loop steps a ``LambdaLR`` once per optimizer step, so warm-up and cosine decay are
smooth within an epoch while the step schedule changes only at epoch boundaries (as in the
paper's code bases, whose milestones are epochs).
"""
from __future__ import annotations

import math

import torch

from ..config import RunConfig


def lr_multiplier(config: RunConfig, epoch: float) -> float:
    """Multiplier of ``config.lr`` at training time ``epoch`` (0 = start, ``config.epochs`` = end)."""
    if config.lr_schedule == "constant":
        factor = 1.0
    elif config.lr_schedule == "step":
        factor = 1.0
        done = math.floor(epoch + 1e-9)
        for milestone, milestone_factor in zip(config.lr_milestones, config.lr_factors):
            if done >= round(milestone * config.epochs):
                factor = milestone_factor
    elif config.lr_schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * min(epoch / config.epochs, 1.0)))
    else:  # validated by RunConfig; kept for readers of this function
        raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}")
    if config.warmup_epochs > 0 and epoch < config.warmup_epochs:
        factor *= epoch / config.warmup_epochs
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, config: RunConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step scheduler: the lr of step ``t`` is ``lr * lr_multiplier(config, t / steps_per_epoch)``.

    Warm-up evaluates the multiplier at the end of the step (``(t + 1) / steps_per_epoch``) so the
    first step never has lr 0.
    """
    def multiplier(step: int) -> float:
        position = step / steps_per_epoch
        if config.warmup_epochs > 0 and position < config.warmup_epochs:
            position = (step + 1) / steps_per_epoch
        return lr_multiplier(config, position)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
