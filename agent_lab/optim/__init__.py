"""Optimizers and learning-rate schedules."""
from .base import SGDW, build_optimizer
from .schedules import build_scheduler, lr_multiplier

__all__ = ["SGDW", "build_optimizer", "build_scheduler", "lr_multiplier"]
