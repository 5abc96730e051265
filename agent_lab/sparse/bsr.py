"""BSR-Net: Bayesian sparse rewiring (Özdenizci & Legenstein, ICML 2021).

BSR-Net trains a sparse network by sampling its connectivity. Every maskable weight ``w`` is written
as ``w = s * theta`` with a sign ``s`` in {-1, +1} fixed at initialisation and a parameter
``theta``; the weight is connected iff ``theta > 0`` (otherwise ``w = 0``). After every optimizer
step the connected ``theta`` receive Gaussian noise (and optionally an L1-prior decrement), every
``theta <= 0`` becomes a disconnection, and as many currently disconnected positions as are needed
to restore the global number of connections are reconnected at random.

In the reference implementation (IGITUGraz/SparseAdversarialTraining, TensorFlow 2) this is
``run_connectivity_sampling.py`` (``train_step``), ``models/layers.py`` (``Conv2DRewiring``,
``DenseRewiring``, ``get_actual_weights``) and ``models/sparse_vgg16.py``
(``sample_connectivity``, ``get_rewire_n_units``, per-layer ``p_init``):

1. the connectivity ``C = theta > 0`` is read before the step;
2. the optimizer (SGDW, momentum 0.9, decoupled weight decay) updates ``theta``; a disconnected
   ``theta`` gets no gradient;
3. ``theta += lr * noise_scaling * N(0, 1)`` on the positions in ``C`` (``noise_scaling`` 1e-6);
   there is no explicit L1 term, weight decay plays the prior's part;
4. the deficit ``global_total - #(theta > 0)`` (``global_total = int(N * p_global)``) is split
   over the layers by a categorical draw with probabilities proportional to layer *sizes*; each
   layer reconnects its share uniformly among its positions with ``theta <= 0`` by setting
   ``theta = 1e-12``.

Mapping onto ordinary PyTorch weights. The model keeps its ``nn.Conv2d``/``nn.Linear`` weights;
the sign ``s`` of every maskable weight is the sign of its initial value (+1 for an exact 0) and is
stored as state; ``theta = s * w`` on connected positions. Because ``s`` is fixed, any optimizer
run on ``w`` with the gradient masked to connected positions is the same optimizer run on ``theta``
(SGD, momentum, weight decay and Adam are all sign-equivariant). After every ``optimizer.step()``
(the post-step hook of :class:`~agent_lab.sparse.engine.Sparsifier`):

* ``theta -= lr * l1`` and ``theta += std * N(0, 1)`` on connected positions, where ``lr`` is read
  from the weight's param group at that step and ``std = lr * noise_scale`` (``noise_form="lr"``,
  the reference code) or ``sqrt(2 * lr * noise_scale)`` (``noise_form="langevin"``, the paper's
  ``sqrt(2 eta T)`` with temperature ``T = noise_scale``);
* every connected position with ``theta <= 0`` is disconnected: ``w = 0`` exactly and its
  per-element optimizer state is zeroed;
* exactly ``target - #connected`` disconnected positions are reconnected, so the global number of
  connections is the same after every step. Positions disconnected in this very step are
  candidates, as in the reference. ``regrowth="layer-size"`` (default, the reference rule) splits
  the count over layers by a multinomial draw proportional to layer sizes and picks uniformly among
  each layer's free positions; where a layer's share exceeds its free positions the excess is
  redrawn over the layers that still have room (the reference code silently drops it, which lets
  the count fall below the target). ``regrowth="uniform"`` picks uniformly among all free
  positions of all layers.
* a reconnected weight starts at ``theta = reconnect_value`` (1e-12, the reference's epsilon),
  i.e. ``w = s * 1e-12``: strictly positive, so "connected iff theta > 0" holds from the moment of
  reconnection; its per-element optimizer state is zeroed (the reference keeps the position's
  stale momentum; here every reconnected weight starts with fresh state). Should the value
  underflow in the weight's dtype it is raised to that dtype's smallest normal number.

Hence, at every point between steps: connected iff ``s * w > 0``; a disconnected weight and its
optimizer state are exactly 0; the number of connections equals ``target``. In the reference a
disconnected ``theta`` keeps a negative value until it is reconnected (and then overwritten by
1e-12); here it is simply 0, which changes nothing that can be observed.

Initial connectivity. ``target = round((1 - sparsity) * N)`` over the maskable weights. Per-layer
initial counts come from ``initial_densities``: ``None`` follows ``distribution`` (``"erk"`` or
``"uniform"`` exact counts from :func:`~agent_lab.sparse.distributions.layer_counts`);
``"bsr-vgg16"`` is the reference's VGG-16 table (:func:`bsr_vgg16_densities`); a dict gives one
density per maskable weight name. Table counts are ``floor(density * numel)`` as in the reference;
if they fall short of ``target`` the deficit is reconnected by the regrowth rule (what the
reference's first step does), and if they exceed it the excess is disconnected uniformly at random
over all connected positions (the reference would keep the excess forever). Initial magnitudes are
the model's own initial weights (the reference draws ``|he_normal|``, the model's He init is the
same up to truncation).

All randomness comes from the sparsifier's private CPU generator; the global RNG is never touched.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import nn

from .distributions import DISTRIBUTIONS, layer_counts, random_masks
from .engine import Sparsifier
from .masks import MaskState, maskable_parameters
from .optimizer_state import mask_optimizer_state_

NOISE_FORMS = ("lr", "langevin")
REGROWTH_MODES = ("layer-size", "uniform")
DENSITY_TABLES = ("bsr-vgg16",)

# Defaults of the reference implementation (IGITUGraz/SparseAdversarialTraining).
DEFAULT_NOISE_SCALE = 1e-6      # run_connectivity_sampling.py: --noise_scaling default
DEFAULT_RECONNECT_VALUE = 1e-12  # models/sparse_vgg16.py: sample_connectivity(epsilon=1e-12)


def bsr_vgg16_densities(density: float) -> tuple[float, ...]:
    """Initial per-layer densities of BSR-Net's VGG-16 for a global ``density`` (= 1 - sparsity).

    The 16 maskable layers in order (13 convolutions, then 3 linear layers): 0.6, 0.6, 0.2, 0.2 for
    the first four convolutions, ``0.5 * density`` for convolutions 5-13 and the first two linear
    layers, and 0.6 for the classifier (``p_init`` in ``models/sparse_vgg16.py`` of the reference).
    """
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0.0 < density <= 1.0:
        raise ValueError(f"density: {density!r} is invalid; it must be a number in (0, 1]")
    half = 0.5 * float(density)
    return (0.6, 0.6, 0.2, 0.2) + (half,) * 11 + (0.6,)


def _check_number(name: str, value: Any, *, positive: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}: {value!r} is invalid; it must be a finite number {bound}")
    return float(value)


def _sample_distinct(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` distinct integers drawn uniformly from ``range(n)`` (a uniformly random ``k``-subset).

    Sparse draws use rejection (the first ``k`` distinct values of an i.i.d. uniform stream), dense
    ones a permutation; either way the cost does not grow with ``n`` when ``k`` is small.
    """
    if not 0 <= k <= n:
        raise ValueError(f"k: cannot draw {k} distinct values from {n}")
    if k == 0:
        return torch.empty(0, dtype=torch.long)
    if 4 * k > n:
        return torch.randperm(n, generator=generator)[:k]
    chosen = torch.empty(0, dtype=torch.long)
    while chosen.numel() < k:
        draw = torch.randint(n, (2 * (k - chosen.numel()) + 8,), generator=generator)
        stream = torch.cat([chosen, draw])
        values, inverse = torch.unique(stream, return_inverse=True)
        first = torch.full((values.numel(),), stream.numel(), dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(stream.numel()), reduce="amin")
        chosen = stream[torch.sort(first).values][:k]  # distinct values in order of first appearance
    return chosen


def _read_counts(masks: list[torch.Tensor]) -> list[int]:
    """The number of True entries of each mask, in one transfer to the host."""
    return torch.stack([mask.sum() for mask in masks]).tolist()


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``; to a GPU through pinned memory, without waiting for the device."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


class BSRRewiring(Sparsifier):
    """BSR-Net rewiring on the maskable weights of ``model`` after every ``optimizer.step()``.

    See the module docstring for the rule and its mapping onto ordinary weights.

    Arguments (defaults from the reference implementation, IGITUGraz/SparseAdversarialTraining):

    * ``sparsity``: global fraction of disconnected maskable weights; the number of connections is
      ``round((1 - sparsity) * N)`` after every step (``--connectivity`` there: 0.01 or 0.1). May be
      omitted when ``masks`` are given (their count is then the target).
    * ``distribution``: initial per-layer counts, ``"erk"`` or ``"uniform"`` (used when
      ``initial_densities`` is None).
    * ``initial_densities``: ``None``, ``"erk"``, ``"uniform"``, ``"bsr-vgg16"`` (the reference's
      VGG-16 ``p_init`` table; the model must have exactly 16 maskable layers) or a dict
      ``{weight name: density}`` covering every maskable weight.
    * ``noise_scale``: 1e-6 (``--noise_scaling``); noise std ``lr * noise_scale`` with
      ``noise_form="lr"`` (reference code), or ``sqrt(2 * lr * noise_scale)`` with
      ``noise_form="langevin"`` (the paper's update with temperature ``noise_scale``).
    * ``l1``: 0 (the reference code has no explicit L1 prior term; its decoupled weight decay acts
      as the prior). When > 0, ``theta -= lr * l1`` on connected positions after each step.
    * ``reconnect_value``: 1e-12, the ``theta`` of a reconnected weight (``sample_connectivity``).
    * ``regrowth``: ``"layer-size"`` (reference) or ``"uniform"``.
    * ``dense_layers``, ``seed``, ``masks``, ``erk_power_scale``: as for :class:`Sparsifier`.
      Given ``masks`` are topped up or trimmed at random to the target when their count differs.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, sparsity: float | None = None,
                 distribution: str = "erk", initial_densities: str | Mapping[str, float] | None = None,
                 dense_layers: str = "none", seed: int = 0, masks: MaskState | None = None,
                 noise_scale: float = DEFAULT_NOISE_SCALE, noise_form: str = "lr", l1: float = 0.0,
                 reconnect_value: float = DEFAULT_RECONNECT_VALUE, regrowth: str = "layer-size",
                 erk_power_scale: float = 1.0) -> None:
        self.noise_scale = _check_number("noise_scale", noise_scale)
        if noise_form not in NOISE_FORMS:
            raise ValueError(f"noise_form: {noise_form!r} is invalid; valid choices: {', '.join(NOISE_FORMS)}")
        self.noise_form = noise_form
        self.l1 = _check_number("l1", l1)
        self.reconnect_value = _check_number("reconnect_value", reconnect_value, positive=True)
        if regrowth not in REGROWTH_MODES:
            raise ValueError(f"regrowth: {regrowth!r} is invalid; valid choices: {', '.join(REGROWTH_MODES)}")
        self.regrowth = regrowth
        if sparsity is not None and (isinstance(sparsity, bool) or not isinstance(sparsity, (int, float))
                                     or not 0.0 < sparsity < 1.0):
            raise ValueError(f"sparsity: {sparsity!r} is invalid; BSR rewiring needs a number in (0, 1)")
        if sparsity is None and masks is None:
            raise ValueError("sparsity: required unless masks are given")
        if masks is not None and initial_densities is not None:
            raise ValueError("initial_densities: give either initial_densities or masks, not both")
        if initial_densities is None:
            if distribution not in DISTRIBUTIONS:
                raise ValueError(f"distribution: {distribution!r} is invalid for BSR rewiring; valid choices: "
                                 f"{', '.join(DISTRIBUTIONS)} (or initial_densities='bsr-vgg16' or a dict)")
            initial_densities = distribution
        if isinstance(initial_densities, str) and initial_densities not in DISTRIBUTIONS + DENSITY_TABLES:
            raise ValueError(f"initial_densities: {initial_densities!r} is invalid; valid choices: "
                             f"{', '.join(DISTRIBUTIONS + DENSITY_TABLES)} or a dict of per-layer densities")
        if not isinstance(initial_densities, (str, Mapping)):
            raise ValueError(f"initial_densities: {initial_densities!r} is invalid; expected a name or a dict")

        params = maskable_parameters(model, dense_layers)
        if not params:
            raise ValueError(f"model: it has no Conv2d/Linear weight left to sparsify (dense_layers={dense_layers!r})")
        # Signs are fixed now, from the initial weights, before any of them is masked to 0.
        positive = {name: p.detach() >= 0 for name, p in params.items()}
        shapes = {name: tuple(p.shape) for name, p in params.items()}
        numel = {name: p.numel() for name, p in params.items()}
        total = sum(numel.values())

        # One generator stream: initial masks first, then (handed to the engine) every rewiring.
        generator = torch.Generator(device="cpu")
        generator.manual_seed(seed)
        if masks is None:
            target = round((1.0 - float(sparsity)) * total)
            counts = self._initial_counts(initial_densities, shapes, numel, float(sparsity), erk_power_scale)
            initial = random_masks(shapes, counts, generator)
        else:
            if not isinstance(masks, MaskState):
                raise TypeError(f"masks: expected a MaskState, got {type(masks).__name__}")
            if set(masks.masks) != set(shapes):
                raise ValueError(f"masks: names {sorted(masks.masks)} differ from the maskable weights {sorted(shapes)}")
            target = masks.nnz() if sparsity is None else round((1.0 - float(sparsity)) * total)
            initial = {name: masks[name].detach().to("cpu").clone() for name in shapes}
        if target < 1:
            raise ValueError(f"sparsity: {sparsity!r} leaves no connection among {total} weights")
        initial = self._adjust_to_target(initial, target, numel, generator)

        super().__init__(model, optimizer, sparsity=None, dense_layers=dense_layers, seed=seed,
                         masks=MaskState(initial))
        self.generator.set_state(generator.get_state())
        self.target = int(target)
        self.positive = {name: positive[name].to(p.device) for name, p in self.params.items()}
        self.last_disconnected = 0
        self.last_reconnected = 0
        self._nnz: dict[str, int] | None = None
        with torch.no_grad():
            # Connected iff theta > 0: an initial weight of exactly 0 starts at the reconnect value.
            for name, w in self.params.items():
                dead = self.masks[name] & (w == 0)
                if dead.any():
                    value = self._signed_reconnect_value(name, w)
                    w.copy_(torch.where(dead, value, w))

    # --- initial connectivity -----------------------------------------------------------------

    @staticmethod
    def _initial_counts(initial_densities, shapes, numel, sparsity, erk_power_scale) -> dict[str, int]:
        if isinstance(initial_densities, str) and initial_densities in DISTRIBUTIONS:
            return layer_counts(shapes, sparsity, initial_densities, erk_power_scale)
        if initial_densities == "bsr-vgg16":
            if len(shapes) != 16:
                raise ValueError(f"initial_densities: 'bsr-vgg16' needs the 16 maskable layers of BSR-Net's "
                                 f"VGG-16 (13 convolutions, 3 linear; dense_layers='none'), the model has "
                                 f"{len(shapes)}")
            densities = dict(zip(shapes, bsr_vgg16_densities(1.0 - sparsity)))
        else:
            densities = dict(initial_densities)
            if set(densities) != set(shapes):
                raise ValueError(f"initial_densities: keys {sorted(densities)} differ from the maskable weights "
                                 f"{sorted(shapes)}")
            for name, value in densities.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                    raise ValueError(f"initial_densities[{name!r}]: {value!r} is invalid; it must be in [0, 1]")
        return {name: int(math.floor(densities[name] * numel[name])) for name in shapes}

    def _adjust_to_target(self, masks: dict[str, torch.Tensor], target: int, numel: Mapping[str, int],
                          generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Top up (by the regrowth rule) or trim (uniformly over connected positions) to ``target``."""
        nnz = {name: int(m.sum()) for name, m in masks.items()}
        difference = target - sum(nnz.values())
        if difference > 0:
            free = {name: numel[name] - nnz[name] for name in masks}
            for name, positions in self._draw_reconnections(difference, free, numel, generator).items():
                flat = masks[name].reshape(-1).clone()
                flat[self._free_positions(masks[name])[positions.to(flat.device)]] = True
                masks[name] = flat.view_as(masks[name])
        elif difference < 0:
            for name, ordinals in self._split_uniform(-difference, nnz, generator).items():
                flat = masks[name].reshape(-1).clone()
                flat[flat.nonzero().squeeze(1)[ordinals.to(flat.device)]] = False
                masks[name] = flat.view_as(masks[name])
        return masks

    # --- random reconnection ------------------------------------------------------------------

    @staticmethod
    def _free_positions(mask: torch.Tensor) -> torch.Tensor:
        return (~mask).reshape(-1).nonzero().squeeze(1)

    @staticmethod
    def _split_uniform(k: int, available: Mapping[str, int], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``k`` positions uniformly among all ``available`` ones: per layer, ordinals into its list."""
        names = list(available)
        ends = torch.tensor([available[name] for name in names], dtype=torch.long).cumsum(0)
        ordinals = _sample_distinct(int(ends[-1]), k, generator)
        layer = torch.bucketize(ordinals, ends, right=True)
        starts = ends - torch.tensor([available[name] for name in names], dtype=torch.long)
        out = {}
        for i, name in enumerate(names):
            picked = ordinals[layer == i] - starts[i]
            if picked.numel():
                out[name] = picked
        return out

    def _draw_reconnections(self, k: int, free: Mapping[str, int], numel: Mapping[str, int],
                            generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Choose ``k`` free positions: ``{layer: ordinals into its list of free positions}``."""
        if k <= 0:
            return {}
        if self.regrowth == "uniform":
            return self._split_uniform(k, free, generator)
        names = list(free)
        size = torch.tensor([float(numel[name]) for name in names], dtype=torch.float64)
        room = torch.tensor([free[name] for name in names], dtype=torch.long)
        counts = torch.zeros(len(names), dtype=torch.long)
        remaining = k
        while remaining > 0:
            probs = size * (counts < room)
            draw = torch.multinomial(probs, remaining, replacement=True, generator=generator)
            counts += torch.bincount(draw, minlength=len(names))
            over = (counts - room).clamp(min=0)
            counts -= over
            remaining = int(over.sum())
        return {name: _sample_distinct(free[name], int(counts[i]), generator)
                for i, name in enumerate(names) if counts[i] > 0}

    def _signed_reconnect_value(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        value = float(torch.tensor(self.reconnect_value, dtype=weight.dtype))  # rounded on the host, not read back
        if value == 0:
            value = torch.finfo(weight.dtype).tiny
        magnitude = torch.full((), value, dtype=weight.dtype, device=weight.device)
        return torch.where(self.positive[name], magnitude, -magnitude)

    # --- the update after every step ----------------------------------------------------------

    def _update_due(self, step: int) -> bool:
        return True

    def _noise_std(self, lr: float) -> float:
        if self.noise_form == "lr":
            return lr * self.noise_scale
        return math.sqrt(2.0 * lr * self.noise_scale)

    def _learning_rates(self) -> dict[int, float]:
        """The current lr of every parameter, read from the live param groups (schedulers change
        them; ``optimizer.load_state_dict`` replaces the group dicts, so they are never cached)."""
        return {id(p): float(group["lr"]) for group in self.optimizer.param_groups for p in group["params"]}

    def _layer_counts(self) -> dict[str, int]:
        """Connections per layer, known on the host: kept by every update, read once after a restore."""
        if self._nnz is None:
            self._nnz = dict(zip(self.params, _read_counts([self.masks[name] for name in self.params])))
        return self._nnz

    @torch.no_grad()
    def update_masks(self) -> None:
        # On a GPU this makes one host read per step (the layers' kept counts, on which the host
        # generator's reconnection draws depend) and no data-dependent shapes on the device: the
        # noise goes in by masked_scatter, reconnected positions are found by a search in the
        # running count of free positions, not by nonzero(). Same draws, same arithmetic, same
        # results as indexing by masks.
        kept: dict[str, torch.Tensor] = {}
        learning_rates = self._learning_rates()
        nnz = self._layer_counts()
        for name, w in self.params.items():
            mask = self.masks[name]
            positive = self.positive[name]
            lr = learning_rates[id(w)]
            std = self._noise_std(lr)
            theta = torch.where(positive, w, -w)
            if nnz[name] and (std > 0 or self.l1 > 0):
                delta = torch.full((nnz[name],), -lr * self.l1, dtype=torch.float32)
                if std > 0:
                    delta += std * torch.randn(nnz[name], generator=self.generator, dtype=torch.float32)
                delta = _to_device(delta, w.device).to(w.dtype)
                theta = torch.where(mask, theta + torch.zeros_like(theta).masked_scatter_(mask, delta), theta)
            keep = mask & (theta > 0)
            w.copy_(torch.where(keep, torch.where(positive, theta, -theta), torch.zeros_like(w)))
            kept[name] = keep

        kept_counts = dict(zip(kept, _read_counts(list(kept.values()))))  # the step's one host read
        deficit = self.target - sum(kept_counts.values())
        free = {name: k.numel() - kept_counts[name] for name, k in kept.items()}
        numel = {name: k.numel() for name, k in kept.items()}
        chosen = self._draw_reconnections(deficit, free, numel, self.generator)
        for name, w in self.params.items():
            keep = kept[name]
            new = keep
            if name in chosen:
                ordinals = _to_device(chosen[name], keep.device)
                free_seen = (~keep).reshape(-1).cumsum(0)  # free positions up to and including each index
                positions = torch.searchsorted(free_seen, ordinals + 1)  # the ordinal-th free position
                flat = keep.reshape(-1).clone()
                flat[positions] = True
                new = flat.view_as(keep)
                w.copy_(torch.where(new & ~keep, self._signed_reconnect_value(name, w), w))
            # Disconnected and reconnected positions alike start from zero optimizer state.
            mask_optimizer_state_(self.optimizer, w, keep)
            self.masks.set(name, new)
        self.last_disconnected = sum(nnz.values()) - sum(kept_counts.values())
        self._nnz = {name: kept_counts[name] + (chosen[name].numel() if name in chosen else 0) for name in kept}
        self.last_reconnected = max(deficit, 0)
        self.masks.updates += 1
        self.masks.last_change = self.last_reconnected / self.target

    # --- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["bsr"] = {"target": self.target, "positive": {k: v.clone() for k, v in self.positive.items()},
                        "last_disconnected": self.last_disconnected, "last_reconnected": self.last_reconnected}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        bsr = state["bsr"]
        if int(bsr["target"]) != self.target:
            raise ValueError(f"state: its connection count {bsr['target']} differs from this sparsifier's "
                             f"{self.target}")
        if set(bsr["positive"]) != set(self.params):
            raise KeyError(f"state: sign names {sorted(bsr['positive'])} differ from the maskable weights "
                           f"{sorted(self.params)}")
        self.masks.load_state_dict(state["masks"])
        self.step = int(state["step"])
        self.generator.set_state(state["generator"])
        self.positive = {name: bsr["positive"][name].to(device=p.device, dtype=torch.bool)
                         for name, p in self.params.items()}
        self.last_disconnected = int(bsr["last_disconnected"])
        self.last_reconnected = int(bsr["last_reconnected"])
        self._nnz = None
        self._enforce()
