"""Sparse training on any ``nn.Module``: masks, distributions, schedules, drop/grow, pipelines.

In your own loop a sparsifier needs no extra calls: it works through the optimizer's step hooks::

    sparsifier = DynamicSparsity(model, optimizer, sparsity=0.9, schedule=UpdateSchedule(100, 7500, 0.3, "cosine"),
                                 growth="gradient")
    for x, y in loader:
        optimizer.zero_grad(); loss_fn(model(x), y).backward(); optimizer.step()
"""
from .bsr import BSRRewiring
from .callback import SparsityCallback
from .distributions import layer_counts, random_masks
from .engine import DynamicSparsity, Sparsifier
from .masks import MaskState, maskable_parameters
from .nm import nm_masks
from .optimizer_state import UnknownOptimizerStateError, register_optimizer_state
from .pipelines import DEFAULTS, SPARSE_PIPELINES, build_sparsifier, resolved_settings
from .schedules import UpdateSchedule

__all__ = ["BSRRewiring", "DEFAULTS", "DynamicSparsity", "MaskState", "SPARSE_PIPELINES", "Sparsifier",
           "SparsityCallback", "UnknownOptimizerStateError", "UpdateSchedule", "build_sparsifier", "layer_counts",
           "maskable_parameters", "nm_masks", "random_masks", "register_optimizer_state", "resolved_settings"]
