"""Sparse training that rides on the optimizer's own step hooks.

A :class:`Sparsifier` registers a pre-step and a post-step hook on a torch optimizer, so any training
loop that calls ``optimizer.step()`` trains sparsely with no other call:

* pre-step: remember what the next mask update needs (only on update steps), then zero the
  gradient at masked positions;
* post-step: zero masked weights and their per-element optimizer state, count the step, and on
  update steps change the masks (:class:`DynamicSparsity`).

``Sparsifier`` alone is static sparse training. ``DynamicSparsity`` adds drop-and-grow updates: SET
(``random``), RigL (``gradient``), ITOP's ``random-unfired``, ``optimizer-gradient`` (growth
scored by the gradient the optimizer is handed: after AGENT's correction, which covers the active
positions only, this equals ``gradient`` where growth looks) and ``corrected-gradient`` (AGENT's
ĝ = g − c·(g_old − g̃) at every position, masked ones included: RigL-ITOP-G of Fig. 27).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .distributions import layer_counts, random_masks
from .masks import MaskState, maskable_parameters
from .optimizer_state import mask_optimizer_state_, per_element_state_names
from .schedules import UpdateSchedule
from .scorers import drop_by_magnitude, gradient_scores, grow, random_scores, unfired_scores



@dataclass(frozen=True)
class GrowthMode:
    """How a growth mode scores one layer's positions at a mask update (the highest free ones grow).

    ``score(sparsifier, name, weight)`` returns the scores. ``gradient`` says which gradient the
    mode needs stashed at the update step: ``"dense"`` (the raw dense gradient, the recorded one
    when :meth:`DynamicSparsity.record_dense_gradients` was given one), ``"step"`` (the gradient
    the optimizer is handed, e.g. AGENT's corrected one), ``"corrected"`` (the one
    :meth:`DynamicSparsity.record_corrected_gradients` was given), or ``None``.
    """

    score: Callable[[Any, str, torch.Tensor], torch.Tensor]  # (the DynamicSparsity, layer name, weight)
    gradient: str | None = None


def _stashed_gradient(sparsifier: Any, name: str, weight: torch.Tensor) -> torch.Tensor:
    if sparsifier._scores is None:
        raise RuntimeError(f"growth {sparsifier.growth!r} scores the gradients of an update step; update_masks() "
                           f"runs from the optimizer step hook and cannot be called on its own")
    return sparsifier._scores[name]


# The growth modes by name: a new mode is a scoring function and one line here.
GROWTH_MODES: dict[str, GrowthMode] = {
    "random": GrowthMode(lambda sparsifier, name, weight: random_scores(weight.shape, sparsifier.generator)),
    "gradient": GrowthMode(_stashed_gradient, gradient="dense"),
    "random-unfired": GrowthMode(lambda sparsifier, name, weight: unfired_scores(sparsifier.masks.union[name],
                                                                                 sparsifier.generator)),
    "optimizer-gradient": GrowthMode(_stashed_gradient, gradient="step"),
    "corrected-gradient": GrowthMode(_stashed_gradient, gradient="corrected"),
}


class Sparsifier:
    """Keep the Conv2d/Linear weights of ``model`` sparse under ``optimizer`` (static masks).

    Masks are drawn at random with :func:`layer_counts` per-layer counts from a private CPU
    generator seeded by ``seed``, unless ``masks`` are given (then ``sparsity`` may be omitted).
    With ``skip_step_on_update`` the optimizer step of a mask-update step is skipped (every
    ``.grad`` is set to None before it), as RigL does. Raises ``UnknownOptimizerStateError`` for an
    optimizer whose per-element state is not registered.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, sparsity: float | None = None,
                 distribution: str = "erk", dense_layers: str = "none", seed: int = 0,
                 masks: MaskState | None = None, erk_power_scale: float = 1.0,
                 skip_step_on_update: bool = False) -> None:
        per_element_state_names(optimizer)
        self.optimizer = optimizer
        self.params = maskable_parameters(model, dense_layers)
        if not self.params:
            raise ValueError(f"model: it has no Conv2d/Linear weight left to sparsify (dense_layers={dense_layers!r})")
        optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [name for name, p in self.params.items() if id(p) not in optimized]
        if missing:
            raise ValueError(f"optimizer: it does not update the maskable weights {missing}; build it over the "
                             f"same model's parameters")
        self.skip_step_on_update = bool(skip_step_on_update)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed)
        shapes = {name: p.shape for name, p in self.params.items()}
        if masks is None:
            if sparsity is None:
                raise ValueError("sparsity: required unless masks are given")
            counts = layer_counts(shapes, sparsity, distribution, erk_power_scale)
            masks = MaskState(random_masks(shapes, counts, self.generator))
        else:
            self._check_given_masks(masks, shapes, sparsity)
        for name, p in self.params.items():
            masks.masks[name] = masks.masks[name].to(p.device)
            masks.union[name] = masks.union[name].to(p.device)
        self.masks = masks
        self.counts = {name: int(masks[name].sum()) for name in self.params}
        self.step = 0
        self._scores: dict[str, torch.Tensor] | None = None
        self._recorded: dict[str, torch.Tensor] | None = None
        self._recorded_corrected: dict[str, torch.Tensor] | None = None
        self._followers: list[Any] = []
        self._enforce()
        self._handles = [optimizer.register_step_pre_hook(self._before_step),
                         optimizer.register_step_post_hook(self._after_step)]

    def _check_given_masks(self, masks: MaskState, shapes: Mapping[str, torch.Size], sparsity: float | None) -> None:
        if not isinstance(masks, MaskState):
            raise TypeError(f"masks: expected a MaskState, got {type(masks).__name__}")
        if set(masks.masks) != set(shapes):
            raise ValueError(f"masks: names {sorted(masks.masks)} differ from the maskable weights {sorted(shapes)}")
        for name, shape in shapes.items():
            if masks[name].shape != shape:
                raise ValueError(f"masks[{name!r}]: shape {tuple(masks[name].shape)} differs from the weight's {tuple(shape)}")
        if sparsity is not None:
            expected = sum(layer_counts(shapes, sparsity, "uniform").values())
            if abs(masks.nnz() - expected) > len(shapes):
                raise ValueError(f"sparsity: {sparsity} disagrees with the given masks (density "
                                 f"{masks.density():.6f}); pass sparsity=None to use the masks as they are")

    # --- hooks --------------------------------------------------------------------------------

    def _before_step(self, optimizer, args, kwargs) -> None:
        closure = args[1] if len(args) > 1 else kwargs.get("closure")  # args[0] is the optimizer
        if closure is not None:
            raise RuntimeError("optimizer.step(closure) is not supported under a Sparsifier: the closure computes "
                               "gradients after the gradient mask is applied; call step() without a closure")
        updating = self._update_due(self.step + 1)
        if updating:
            self._stash_for_update()
        if updating and self.skip_step_on_update:
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None
            return
        with torch.no_grad():
            for name, p in self.params.items():
                if p.grad is not None:
                    p.grad.mul_(self.masks[name])

    def _after_step(self, optimizer, args, kwargs) -> None:
        try:
            self._enforce()
            self.step += 1
            updates = self.masks.updates
            if self._update_due(self.step):
                self.update_masks()
            if self.masks.updates != updates:
                self.notify_followers()
        finally:
            self._scores = None
            self._recorded = None
            self._recorded_corrected = None

    def follow(self, holder: Any) -> None:
        """Keep ``holder``'s per-element state in line with the masks.

        ``holder.mask_state_(name, keep)`` is called for every masked weight now and after every
        mask update (a gradient corrector's snapshot gradient, MVR's running estimate, ...): state
        outside the mask is zeroed there, and positions grown later start from zero state.
        """
        self._followers.append(holder)
        for name in self.params:
            holder.mask_state_(name, self.masks[name])

    def notify_followers(self) -> None:
        for holder in self._followers:
            for name in self.params:
                holder.mask_state_(name, self.masks[name])

    def will_update(self) -> bool:
        """Whether the coming optimizer step ends with a mask update."""
        return self._update_due(self.step + 1)

    @torch.no_grad()
    def _enforce(self) -> None:
        """Zero every masked weight and its per-element optimizer state."""
        self.masks.apply_(self.params)
        for name, p in self.params.items():
            mask_optimizer_state_(self.optimizer, p, self.masks[name])

    # --- what subclasses override -------------------------------------------------------------

    def _update_due(self, step: int) -> bool:
        """Whether the masks change once ``step`` optimizer steps are complete (static: never)."""
        return False

    def _stash_for_update(self) -> None:
        """Keep what the coming update needs from the gradients (called before they are masked)."""

    def update_masks(self) -> None:
        """Change the masks (static masks: nothing to do)."""

    # --- public -------------------------------------------------------------------------------

    def record_dense_gradients(self, grads: Mapping[str, torch.Tensor]) -> None:
        """Hand over the raw dense gradients of this batch (``{weight name: grad}``) for growth scores.

        For a gradient corrector that rewrites ``.grad`` before ``optimizer.step()``: ``gradient``
        growth then scores these instead of the ``.grad`` seen at the step. Only kept when the
        coming step updates the masks, so calling it on every step costs nothing otherwise.
        """
        if not self._update_due(self.step + 1):
            return
        self._recorded = self._checked_scores(grads)

    def record_corrected_gradients(self, grads: Mapping[str, torch.Tensor]) -> None:
        """Hand over a corrector's gradient at every position (``{weight name: ĝ}``) for growth
        ``corrected-gradient``; like :meth:`record_dense_gradients`, kept for update steps only."""
        if self._update_due(self.step + 1):
            self._recorded_corrected = self._checked_scores(grads)

    def _checked_scores(self, grads: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        missing = [name for name in self.params if name not in grads]
        if missing:
            raise ValueError(f"grads: missing the maskable weights {missing}")
        for name, p in self.params.items():
            if grads[name].shape != p.shape:
                raise ValueError(f"grads[{name!r}]: shape {tuple(grads[name].shape)} differs from the weight's "
                                 f"{tuple(p.shape)}")
        return {name: gradient_scores(grads[name]) for name in self.params}

    def metrics(self) -> dict[str, float]:
        return {"density": self.masks.density(), "itop_rate": self.masks.itop_rate(),
                "mask_change": self.masks.last_change}

    def state_dict(self) -> dict[str, Any]:
        return {"masks": self.masks.state_dict(), "step": self.step, "generator": self.generator.get_state(),
                "counts": dict(self.counts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        counts = dict(state["counts"])
        if counts != self.counts:
            raise ValueError(f"state: its per-layer counts {counts} differ from this sparsifier's {self.counts}")
        self.masks.load_state_dict(state["masks"])
        self.step = int(state["step"])
        self.generator.set_state(state["generator"])
        self._enforce()

    def remove(self) -> None:
        """Unregister the optimizer hooks; masks stop being enforced."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


class DynamicSparsity(Sparsifier):
    """Drop-and-grow sparse training: SET, RigL, ITOP and the optimizer-gradient variant.

    At every update step of ``schedule`` each layer drops ``round(fraction * nnz)`` connections of
    smallest magnitude and grows as many by ``growth`` score, so per-layer counts never change.
    Newly grown weights and their optimizer state start at exactly 0. Unless ``allow_regrow``, a
    weight dropped by an update cannot be grown back by the same update; if it is (allowed), it
    simply stays connected with its value and state.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, schedule: UpdateSchedule,
                 growth: str, sparsity: float | None = None, allow_regrow: bool = False,
                 distribution: str = "erk", dense_layers: str = "none", seed: int = 0,
                 masks: MaskState | None = None, erk_power_scale: float = 1.0,
                 skip_step_on_update: bool = False) -> None:
        if not isinstance(schedule, UpdateSchedule):
            raise TypeError(f"schedule: expected an UpdateSchedule, got {type(schedule).__name__}")
        if growth not in GROWTH_MODES:
            raise ValueError(f"growth: {growth!r} is invalid; valid choices: {', '.join(GROWTH_MODES)}")
        self.schedule = schedule
        self.growth = growth
        self.allow_regrow = bool(allow_regrow)
        super().__init__(model, optimizer, sparsity=sparsity, distribution=distribution, dense_layers=dense_layers,
                         seed=seed, masks=masks, erk_power_scale=erk_power_scale,
                         skip_step_on_update=skip_step_on_update)

    def _update_due(self, step: int) -> bool:
        return self.schedule.is_update_step(step)

    def _stash_for_update(self) -> None:
        needs = GROWTH_MODES[self.growth].gradient
        if needs == "dense" and self._recorded is not None:
            self._scores = self._recorded
        elif needs == "corrected":
            if self._recorded_corrected is None:
                raise RuntimeError("growth 'corrected-gradient' scores a gradient corrector's ĝ at every position: "
                                   "record_corrected_gradients() must be given it before the update step")
            self._scores = self._recorded_corrected
        elif needs is not None:
            # A layer without a gradient scores 0 everywhere and grows at its lowest free indices.
            self._scores = {name: gradient_scores(p.grad) if p.grad is not None else torch.zeros_like(p)
                            for name, p in self.params.items()}

    def _growth_scores(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        return GROWTH_MODES[self.growth].score(self, name, weight)

    @torch.no_grad()
    def update_masks(self) -> None:
        fraction = self.schedule.fraction(self.step)
        connected = self.masks.nnz()
        replaced = 0
        for name, weight in self.params.items():
            old = self.masks[name]
            nnz = int(old.sum())
            n = round(fraction * nnz)
            if not self.allow_regrow:
                n = min(n, old.numel() - nnz)  # only never-dropped free positions can grow
            if n == 0:
                continue
            kept = drop_by_magnitude(weight, old, n)
            new, grown = grow(self._growth_scores(name, weight), kept, n,
                              forbidden=None if self.allow_regrow else old & ~kept)
            fresh = grown & ~old
            weight.mul_(new).masked_fill_(fresh, 0.0)
            mask_optimizer_state_(self.optimizer, weight, new & ~fresh)
            self.masks.set(name, new)
            replaced += int(fresh.sum())
        self.masks.updates += 1
        self.masks.last_change = replaced / max(connected, 1)
