"""Learning-rate schedules as multipliers of the base lr, evaluated at fractional epochs.

The training loop steps a ``LambdaLR`` once per optimizer step, so warm-up and cosine decay are
smooth within an epoch. The step schedule changes at exact optimizer steps: milestone ``m`` (a
fraction of training) falls on step ``round(m * total_steps)`` with ``total_steps = epochs *
steps_per_epoch``, and step ``t`` runs at the factor of the last milestone whose step is ``<= t``
(1 before the first). Short runs therefore see every configured factor, however few epochs they
have. Where ``m * epochs`` is a whole number (the paper's schedules, e.g. 25%/50% of 200 epochs)
the milestone falls on that epoch's first step, as in the paper's code bases, whose milestones are
epochs.
"""
from __future__ import annotations

import math
from typing import Any

import torch


# Tolerance of comparisons of fractional training times (milestone * epochs is not always exact).
_EPS = 1e-9


def milestone_steps(config: Any, steps_per_epoch: int) -> tuple[int, ...]:
    """The optimizer steps at which the step schedule's factors take effect (one per milestone)."""
    total_steps = config.epochs * steps_per_epoch
    return tuple(round(milestone * total_steps) for milestone in config.lr_milestones)


def _step_factor(config: Any, epoch: float, steps_per_epoch: int | None) -> float:
    factor = 1.0
    if steps_per_epoch is None:
        # No step grid: the milestones are the exact training times milestone * epochs.
        for milestone, milestone_factor in zip(config.lr_milestones, config.lr_factors):
            if epoch + _EPS >= milestone * config.epochs:
                factor = milestone_factor
        return factor
    position = epoch * steps_per_epoch
    step = round(position) if abs(position - round(position)) < 1e-6 else math.floor(position)
    for milestone_step, milestone_factor in zip(milestone_steps(config, steps_per_epoch), config.lr_factors):
        if step >= milestone_step:
            factor = milestone_factor
    return factor


def _schedule_factor(config: Any, epoch: float, steps_per_epoch: int | None) -> float:
    """The schedule's multiplier without warm-up."""
    if config.lr_schedule == "constant":
        return 1.0
    if config.lr_schedule == "step":
        return _step_factor(config, epoch, steps_per_epoch)
    if config.lr_schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(epoch / config.epochs, 1.0)))
    # validated by RunConfig; kept for readers of this function
    raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}")


def _warmup_factor(config: Any, epoch: float) -> float:
    if config.warmup_epochs > 0 and epoch < config.warmup_epochs:
        return epoch / config.warmup_epochs
    return 1.0


def lr_multiplier(config: Any, epoch: float, steps_per_epoch: int | None = None) -> float:
    """Multiplier of ``config.lr`` at training time ``epoch`` (0 = start, ``config.epochs`` = end).

    With ``steps_per_epoch``, ``epoch`` is read as step ``t = epoch * steps_per_epoch`` (rounded
    down) and the step schedule's milestones fall on the steps of :func:`milestone_steps`, exactly
    as in :func:`build_scheduler` (past warm-up, step ``t``'s lr is ``lr * lr_multiplier(config,
    t / steps_per_epoch, steps_per_epoch)``). Without it a milestone takes effect at training time
    ``milestone * epochs`` (the limit of many steps per epoch; the same where that is a step).
    """
    return _schedule_factor(config, epoch, steps_per_epoch) * _warmup_factor(config, epoch)


def build_scheduler(optimizer: torch.optim.Optimizer, config: Any,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step scheduler: the lr of step ``t`` is ``lr * lr_multiplier(config, t / steps_per_epoch, steps_per_epoch)``.

    Warm-up (and a cosine decay under it) evaluates the multiplier at the end of the step
    (``(t + 1) / steps_per_epoch``) so the first step never has lr 0; the step schedule's factor is
    always that of step ``t``.
    """
    def multiplier(step: int) -> float:
        position = step / steps_per_epoch
        if config.warmup_epochs > 0 and position < config.warmup_epochs:
            ramp = (step + 1) / steps_per_epoch
        else:
            ramp = position
        schedule_at = position if config.lr_schedule == "step" else ramp
        return _schedule_factor(config, schedule_at, steps_per_epoch) * _warmup_factor(config, ramp)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
