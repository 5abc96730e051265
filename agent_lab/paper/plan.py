"""The runs an artifact needs: labelled configs ("arms") at the paper's settings, and builders.

An :class:`Arm` is one line of a figure or one column of a table: a label, the paper-scale
:class:`~agent_lab.config.RunConfig` (seed 0), the facets that place it in the layout (objective,
sparsity, model, data set, ...) and the name of its row in the paper's printed numbers. A scale
turns its config into that scale's and seeds it (:func:`runs_of`); equal configs are one run, so
artifacts that need the same run share it.

The builders write App. C's settings once: :func:`bsr` (BSR-Net: VGG-16/WRN, lr 0.04, decoupled
weight decay, lr × 0.1 at 25 % and × 0.005 at 50 % of training = epochs 50 and 100 of 200, data in
[0, 1], Kaiming init), :func:`rigl` (RigL: lr 0.1 × 0.1 at 50 % / 75 %, 250 epochs) and
:func:`itop` (ITOP: Nesterov SGD lr 0.1 × 0.1 at 50 % / 75 %, 250 epochs). AGENT arms take the
authors' initial ĉ (0 for A-BSR-Net with a clean un-augmented full pass, 0.1 for A-RigL/A-ITOP).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import RunConfig
from .scales import Scale

BSR_BUDGETS = (20, 40, 70, 90, 140, 200)
OBJECTIVE_NAMES = {"none": "standard", "at": "AT", "trades": "TRADES"}


@dataclass(frozen=True)
class Arm:
    """One labelled configuration of an artifact, trained with every seed of the scale.

    ``driver``: ``train`` (the loop) or ``hydra`` (:func:`~agent_lab.experiments.hydra.run_hydra`
    on the dense ``config`` to ``facets['sparsity']``). ``paper_row``: the row of the paper's
    numbers this arm is compared with (None: the paper prints none for it).
    """

    label: str
    config: RunConfig
    facets: tuple[tuple[str, Any], ...] = ()
    paper_row: str | None = None
    driver: str = "train"

    @property
    def facet(self) -> dict[str, Any]:
        return dict(self.facets)

    def at(self, scale: Scale, seed: int, device: str = "auto") -> RunConfig:
        return scale.apply(self.config, device).replace(seed=seed)


@dataclass(frozen=True)
class Run:
    """One run of the plan: an arm at a scale with one seed."""

    arm: Arm
    seed: int
    config: RunConfig

    @property
    def key(self) -> tuple:
        """Equal keys are one run: the config hash (and, for HYDRA, the sparsity it prunes to)."""
        extra = (self.arm.facet.get("sparsity"),) if self.arm.driver == "hydra" else ()
        return (self.arm.driver, self.config.config_hash(), *extra)


def runs_of(arms: tuple[Arm, ...], scale: Scale, seeds: int | None = None, device: str = "auto") -> list[Run]:
    n = scale.seeds if seeds is None else seeds
    return [Run(arm, seed, arm.at(scale, seed, device)) for arm in arms for seed in range(n)]


def facets(**values: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(values.items())


# ------------------------------------------------------------------------------------------------
# Builders at the paper's settings
# ------------------------------------------------------------------------------------------------

def _pipeline(pipeline: str, sparsity: float) -> dict[str, Any]:
    return {"pipeline": "dense", "sparsity": 0.0} if sparsity == 0 else {"pipeline": pipeline, "sparsity": sparsity}


def bsr(optimizer: str = "sgd", *, model: str = "vgg16", dataset: str = "cifar10", sparsity: float = 0.99,
        adversarial: str = "none", budgets: tuple[int, ...] = BSR_BUDGETS, **changes: Any) -> RunConfig:
    """BSR-Net (or A-BSR-Net with ``optimizer='agent'``) at App. C's settings, 200 epochs.

    Adversarial runs measure PGD-50 × 10 robust accuracy on the whole test set at ``budgets``.
    """
    values: dict[str, Any] = dict(
        dataset=dataset, model=model, **_pipeline("bsr", sparsity), optimizer=optimizer, lr=0.04,
        momentum=0.9, weight_decay=5e-4, weight_decay_mode="decoupled", input_norm="none", lr_schedule="step",
        lr_milestones=(0.25, 0.5), lr_factors=(0.1, 0.005), epochs=200, batch_size=128, adversarial=adversarial)
    if optimizer in ("agent", "fixed-c", "no-gamma", "svrg"):
        values.update(c0=0.0, full_pass_augment=False)
    if adversarial != "none":
        values.update(robust_eval="pgd50", robust_eval_restarts=10, robust_eval_subset=None,
                      robust_eval_epochs=tuple(budgets))
    values.update(changes)
    return RunConfig(**values)


def rigl(optimizer: str = "sgd", *, model: str = "resnet50", dataset: str = "cifar10", sparsity: float = 0.9,
         pipeline: str = "rigl", **changes: Any) -> RunConfig:
    """RigL (or SET) with SGD momentum (A-RigL with ``optimizer='agent'``), 250 epochs."""
    values: dict[str, Any] = dict(
        dataset=dataset, model=model, **_pipeline(pipeline, sparsity), optimizer=optimizer, lr=0.1, momentum=0.9,
        weight_decay=5e-4, lr_schedule="step", lr_milestones=(0.5, 0.75), lr_factors=(0.1, 0.01), epochs=250,
        batch_size=128)
    values.update(changes)
    return RunConfig(**values)


def itop(optimizer: str = "sgd", *, model: str = "vgg-c", dataset: str = "cifar10", sparsity: float = 0.99,
         pipeline: str = "set-itop", **changes: Any) -> RunConfig:
    """SET-ITOP / RigL-ITOP with Nesterov SGD (A-ITOP with ``optimizer='agent'``), 250 epochs."""
    values: dict[str, Any] = dict(
        dataset=dataset, model=model, **_pipeline(pipeline, sparsity), optimizer=optimizer, lr=0.1,
        weight_decay=5e-4, lr_schedule="step", lr_milestones=(0.5, 0.75), lr_factors=(0.1, 0.01), epochs=250,
        batch_size=128)
    if optimizer == "adam":
        values.update(lr=1e-3)
    elif optimizer not in ("mvr", "agent-mvr"):  # MVR is its own momentum
        values.update(momentum=0.9, nesterov=True)
    values.update(changes)
    return RunConfig(**values)
