"""The sparse-training pipelines by name, with the defaults of the papers they come from.

| pipeline | masks | update every | drop fraction | until | growth |
|---|---|---|---|---|---|
| static | ERK, fixed | never | - | - | - |
| set | ERK | 100 steps | 0.3, cosine to 0 | 75% | random (Mocanu et al. 2018, RigL's SET) |
| rigl | ERK | 100 steps | 0.3, cosine to 0 | 75% | |dense gradient| (Evci et al. 2020) |
| set-itop | ERK | 1500 steps | 0.5, cosine to 0.005 | 100% | random (Liu et al. 2021) |
| rigl-itop | ERK | 4000 steps | 0.5, cosine to 0.005 | 100% | |dense gradient| (Liu et al. 2021) |
| bsr | ERK (or BSR-Net's VGG-16 table: sparse_init bsr-vgg16); rewiring after every step, global count kept (Özdenizci & Legenstein 2021) |

Every default can be overridden through the RunConfig fields ``sparse_init``, ``update_every``,
``drop_fraction``, ``t_end`` and ``growth``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .bsr import BSRRewiring
from .engine import DynamicSparsity, Sparsifier
from .masks import MaskState, maskable_parameters
from .nm import nm_masks
from .schedules import UpdateSchedule

SPARSE_INIT_CHOICES = ("erk", "uniform", "nm", "bsr-vgg16")


@dataclass(frozen=True)
class PipelineSettings:
    sparse_init: str
    update_every: int        # optimizer steps between mask updates (0: never)
    drop_fraction: float     # initial fraction of each layer's connections replaced per update
    final_drop_fraction: float
    t_end: float             # fraction of training after which masks stay fixed
    growth: str | None


DEFAULTS: dict[str, PipelineSettings] = {
    "static": PipelineSettings("erk", 0, 0.0, 0.0, 0.0, None),
    "set": PipelineSettings("erk", 100, 0.3, 0.0, 0.75, "random"),
    "rigl": PipelineSettings("erk", 100, 0.3, 0.0, 0.75, "gradient"),
    "set-itop": PipelineSettings("erk", 1500, 0.5, 0.005, 1.0, "random"),
    "rigl-itop": PipelineSettings("erk", 4000, 0.5, 0.005, 1.0, "gradient"),
    "bsr": PipelineSettings("erk", 1, 0.0, 0.0, 1.0, "random"),
}
# The sparse pipelines: a new pipeline that differs in its settings is one line above.
SPARSE_PIPELINES = tuple(DEFAULTS)


def resolved_settings(config) -> PipelineSettings:
    """The pipeline's defaults with the config's explicit overrides applied."""
    base = DEFAULTS[config.pipeline]
    return PipelineSettings(
        sparse_init=config.sparse_init or base.sparse_init,
        update_every=base.update_every if config.update_every is None else config.update_every,
        drop_fraction=base.drop_fraction if config.drop_fraction is None else config.drop_fraction,
        final_drop_fraction=base.final_drop_fraction,
        t_end=base.t_end if config.t_end is None else config.t_end,
        growth=config.growth or base.growth,
    )


def parse_nm(text: str) -> tuple[int, int]:
    """``"2:4"`` -> ``(2, 4)``."""
    try:
        n, m = (int(part) for part in text.split(":"))
    except ValueError:
        raise ValueError(f"nm: {text!r} is invalid; expected 'N:M' with integers 0 < N < M, e.g. '2:4'") from None
    if not 0 < n < m:
        raise ValueError(f"nm: {text!r} is invalid; expected 'N:M' with integers 0 < N < M, e.g. '2:4'")
    return n, m


def build_sparsifier(config, model: torch.nn.Module, optimizer: torch.optim.Optimizer, total_steps: int):
    """The sparsifier ``config.pipeline`` asks for, attached to ``optimizer`` (None for dense)."""
    if config.pipeline == "dense":
        return None
    settings = resolved_settings(config)
    common = dict(sparsity=config.sparsity, dense_layers=config.dense_layers, seed=config.seed)
    if config.pipeline == "bsr":
        return BSRRewiring(model, optimizer, initial_densities=settings.sparse_init, **common)
    if settings.sparse_init == "nm":
        n, m = parse_nm(config.nm)
        params = maskable_parameters(model, config.dense_layers)
        common["masks"] = MaskState(nm_masks(params, n, m))
    else:
        common["distribution"] = settings.sparse_init
    if config.pipeline == "static" or settings.update_every == 0:
        return Sparsifier(model, optimizer, **common)
    schedule = UpdateSchedule(update_every=settings.update_every, end_step=round(settings.t_end * total_steps),
                              drop_fraction=settings.drop_fraction, decay="cosine",
                              final_fraction=settings.final_drop_fraction)
    return DynamicSparsity(model, optimizer, schedule=schedule, growth=settings.growth,
                           skip_step_on_update=config.skip_step_on_update, **common)
