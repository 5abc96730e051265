"""AGENT: adaptive gradient correction (Algorithm 1, Eq. 2-4 of "Balance is Essence").

:class:`GradientCorrector` works with any ``nn.Module`` and any torch optimizer, in the user's own
training loop::

    corrector = GradientCorrector(model, rule="agent", gamma=0.1, alpha=0.3, c0=0.1)
    full_pass = full_pass_loader(images, labels, batch_size, seed=0, augment=True)  # agent_lab.data
    for epoch in range(epochs):
        corrector.refresh(full_pass.epoch(epoch), loss_fn)  # snapshot, full gradient, c-hat
        for x, y in train_batches:
            optimizer.zero_grad()
            loss_fn(model, x, y).backward()
            corrector.correct_(x, y, loss_fn)                  # p.grad <- g - c*g_old + c*g_tilde
            optimizer.step()

``loss_fn(model, x, y)`` returns the batch's mean loss as a scalar tensor. It is called with the
live model (training gradient, refresh pass) and with the snapshot model (old gradient, ĉ* pass).

Semantics
---------
* **Refresh** (every ``m`` steps, normally once per epoch; the caller decides when). One pass over
  ``batches`` (each batch once), which must be class-mixed: draw them in a shuffled order at the
  training batch size (:func:`agent_lab.data.full_pass_loader`); batches that look sorted by
  class raise a :class:`~agent_lab.data.ClassSortedBatchesWarning`. For every batch: the mean loss at the current θ with its gradient
  (``torch.autograd.grad`` into private buffers, never into the live ``.grad``), accumulated as
  ``g̃ = Σ_b n_b ∇L_b / Σ_b n_b``; and, when a previous snapshot θ̃ exists, the mean loss at θ̃
  (forward only). Then ``ĉ* = Cov(L_cur, L_old) / Var(L_old)`` with sample (ddof=1) statistics in
  float64 over the per-batch losses (Eq. 4), ``ĉ ← (1-α)ĉ + αĉ*``, then ``θ̃ ← θ`` (parameters and
  buffers) and ``g̃`` replaced. ĉ* is undefined (reported as NaN, ĉ left unchanged) at the first
  refresh, with fewer than two batches, when ``Var(L_old) == 0``, or when the losses are not
  finite. There is no clipping of ĉ* (none in the paper nor in the authors' code).
* **Applied coefficient** ``c`` (rules of :data:`COEFFICIENT_RULES`):
  ``agent``: γ·ĉ (Algorithm 1); ``svrg``: 1; ``fixed-c``: ``fixed_c`` -- the paper's ablation
  "Fixed c_t" sets c_t = 0.1, read here as the *applied* coefficient (no extra γ factor);
  ``no-gamma``: ĉ (γ = 1); ``ramp``: γ·(1 - (1-α)^e) with e the number of refreshes done after the
  first. ``ramp`` is what the official A-BSR-Net code applies: it starts from ĉ = 0 with no update
  at the first epoch, and it re-copies the snapshot just before estimating ĉ*, so ĉ* ≡ 1 and the
  EMA gives ĉ_e = 1 - (1-α)^e; c is therefore 0 until the second refresh. ``ramp`` ignores ``c0``
  and ĉ*; ĉ and ĉ* are still estimated for every rule (and logged), so every rule pays the same
  forward-only ĉ* pass.
  Before the first refresh there is no snapshot: ``c`` is 0 and :meth:`correct_` is a no-op.
* **Correction** (:meth:`correct_`, after ``loss.backward()`` and before ``optimizer.step()``):
  the old gradient on the *same* inputs at θ̃, then ``p.grad ← p.grad - c·g_old + c·g̃`` in place
  (Eq. 2) at the positions that are correctable (see :meth:`mask_state_`). When ``c == 0`` the
  snapshot pass is skipped entirely and 0 passes are reported.
* **Isolation.** Auxiliary passes run in the live model's current train/eval mode (module by
  module: in training, BN uses batch statistics, as the training gradient does) but leave behind
  neither the live model's buffers (BN running statistics), nor its modes, nor its ``.grad``, nor
  the global RNG states (torch CPU and, when initialised, CUDA; Python ``random``; NumPy). The
  snapshot's buffers are restored after every pass, so they stay those of θ̃. Randomness drawn by
  the ``batches`` iterator inside :meth:`refresh` is rolled back too, so a loader that shuffles
  or augments from the global RNG repeats those draws in the training stream afterwards: give
  :meth:`refresh` a loader with its own generator (or none). Within a refresh the snapshot's
  forward for a batch replays the RNG state of the live forward for that batch, so stochastic
  layers (dropout) use the same masks for L_cur and L_old. In :meth:`correct_` pass
  ``rng_state=capture_rng_state()`` taken just before the training forward to give the snapshot
  the training pass's dropout masks; without it the snapshot pass draws from the current state
  (then rolled back).
* **Speed options** (off by default; the first two are documented deviations or approximations):
  ``c_hat_from_steps``: ĉ* regresses the loss pairs (L(θ_t), L(θ̃)) that the steps since the last
  refresh computed on their own batches (the training loss and the snapshot pass of
  :meth:`correct_`), so the refresh skips its forwards at θ̃. Unlike Eq. 4, the pairs are taken at
  the moving θ_t rather than at the θ of the refresh. ``fused``: the refresh takes the gradient at
  θ and the loss at θ̃ of each batch in one ``torch.func.vmap`` call (the snapshot's gradient comes
  along unused, or serves ``snapshot_gradient_on_refresh``), and :meth:`paired_backward_` does the
  step's training backward and snapshot gradient in one call; the numbers are those of the
  sequential passes up to float rounding (tested). The fraction of the training set a refresh
  reads is the caller's: hand :meth:`refresh` fewer batches.
* **Cost.** ``refresh`` reports ``fwd_bwd = N + N`` (N = examples) when a snapshot existed, else
  ``N`` (also with ``c_hat_from_steps``, unless ``snapshot_gradient_on_refresh`` asks for the pass
  at θ̃): the forward-only ĉ* pass is counted as a whole pass (an over-count). ``correct_`` returns
  the batch size (one forward+backward per example at θ̃; with ``c_hat_from_steps`` and ``c == 0`` a
  forward only, counted whole), or 0 when skipped or when :meth:`paired_backward_` already paid for it
  (its caller counts that pass).
"""
from __future__ import annotations

import contextlib
import math
import numbers
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..data.full_pass import ClassMixing, warn_if_class_sorted
from ..distributed import all_reduce_mean_, all_reduce_sum_, is_distributed
from ..isolation import copy_without_grads, module_preserved, rng_preserved
from .fused import paired_gradients_of
from ..rng import capture_rng_state, restore_rng_state  # re-exported: part of this module's API

__all__ = ["COEFFICIENT_RULES", "GradientCorrector", "capture_rng_state", "restore_rng_state"]



def _ramp(corrector: "GradientCorrector") -> float:
    # the official A-BSR-Net schedule (ĉ_0 = 0, ĉ* ≡ 1 from the second refresh on)
    return corrector.gamma * (1.0 - (1.0 - corrector.alpha) ** (corrector.refreshes - 1))


# The coefficient rules by name: the coefficient applied to the old gradient once a snapshot
# exists. A new rule is a function of the corrector and one line here.
COEFFICIENT_RULES: dict[str, Callable[["GradientCorrector"], float]] = {
    "agent": lambda corrector: corrector.gamma * corrector.c_hat,
    "svrg": lambda corrector: 1.0,
    "fixed-c": lambda corrector: corrector.fixed_c,
    "no-gamma": lambda corrector: corrector.c_hat,
    "ramp": _ramp,
}

LossFn = Callable[[nn.Module, Any, Any], torch.Tensor]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def _batch_size(x: Any, y: Any) -> int:
    for t in (x, y):
        if isinstance(t, torch.Tensor) and t.dim() > 0:
            return int(t.shape[0])
    try:
        return len(x)
    except TypeError:
        raise ValueError("cannot tell the batch size: x or y must be a tensor with a batch "
                         "dimension, or x must have a len()") from None


def _scalar_loss(value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ValueError("loss_fn(model, x, y) must return the batch's mean loss as a scalar tensor; "
                         f"got {type(value).__name__}"
                         + (f" of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else ""))
    return value.reshape(())


def _accumulate_gradient(model: nn.Module, params: list[torch.Tensor], loss_fn: LossFn, x: Any, y: Any,
                         acc: list[torch.Tensor], weight: int) -> torch.Tensor:
    """``acc += weight · ∇ loss_fn(model, x, y)`` per parameter (``.grad`` untouched); returns the
    detached loss."""
    with torch.enable_grad():
        loss = _scalar_loss(loss_fn(model, x, y))
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    with torch.no_grad():
        for a, g in zip(acc, grads):
            if g is not None:
                a.add_(g, alpha=weight)
    return loss.detach()


def _loss_regression(current: list[torch.Tensor], old: list[torch.Tensor]) -> float:
    """Eq. 4: Cov(L_cur, L_old) / Var(L_old), sample statistics in float64; NaN if undefined."""
    if len(old) < 2:
        return math.nan
    cur = torch.stack([v.detach().to(torch.float64) for v in current]).cpu().numpy()
    prev = torch.stack([v.detach().to(torch.float64) for v in old]).cpu().numpy()
    if not (np.all(np.isfinite(cur)) and np.all(np.isfinite(prev))):
        return math.nan
    var = float(np.var(prev, ddof=1))
    if var == 0.0:
        return math.nan
    cov = float(np.cov(np.stack([cur, prev]), ddof=1)[0, 1])
    return cov / var


def _check_real(name: str, value: Any, low: float | None, high: float | None, *,
                low_open: bool = False, text: str) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        if low is not None and (v <= low if low_open else v < low):
            ok = False
        if high is not None and v > high:
            ok = False
    if not ok:
        raise ValueError(f"GradientCorrector: {name}={value!r} is invalid; {name} must be {text}")
    return float(value)


def _with_aux(loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return loss, loss.detach()


class _Network:
    """What a loss function sees of the model inside a batched (vmap) call: ``network(x)`` only."""

    __slots__ = ("_call",)

    def __init__(self, call: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self._call = call

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._call(x)


# --------------------------------------------------------------------------------------------
# The corrector
# --------------------------------------------------------------------------------------------

class GradientCorrector:
    """AGENT's gradient correction ĝ = g(θ) - c·g(θ̃) + c·g̃ for any model and optimizer.

    Arguments (keyword-only after ``model``):

    * ``rule``: one of :data:`COEFFICIENT_RULES` (see the module docstring).
    * ``gamma``: scaling γ of the estimate, 0 ≤ γ ≤ 1 (used by ``agent`` and ``ramp``).
    * ``alpha``: smoothing factor α of the EMA of ĉ*, 0 < α ≤ 1 (also the ``ramp`` rate).
    * ``c0``: initial ĉ, any finite real (the paper's Algorithm 1 uses 0, A-ITOP/A-RigL 0.1).
    * ``fixed_c``: the applied coefficient of rule ``fixed-c``, 0 ≤ fixed_c ≤ 1.

    The parameters corrected are the model's ``named_parameters()`` that require a gradient when
    the corrector is built. Attributes: ``c_hat`` (ĉ), ``c_hat_star`` (last ĉ*, NaN when
    undefined), ``refreshes`` (refreshes done), ``c`` (applied coefficient, property).
    """

    def __init__(self, model: nn.Module, *, rule: str = "agent", gamma: float = 0.1, alpha: float = 0.3,
                 c0: float = 0.1, fixed_c: float = 0.1) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"GradientCorrector: model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(rule, str) or rule not in COEFFICIENT_RULES:
            raise ValueError(f"GradientCorrector: rule={rule!r} is invalid; valid choices: "
                             + ", ".join(COEFFICIENT_RULES))
        self.rule = rule
        self.gamma = _check_real("gamma", gamma, 0.0, 1.0, text="a real number with 0 <= gamma <= 1")
        self.alpha = _check_real("alpha", alpha, 0.0, 1.0, low_open=True,
                                 text="a real number with 0 < alpha <= 1")
        self.c0 = _check_real("c0", c0, None, None, text="a finite real number")
        self.fixed_c = _check_real("fixed_c", fixed_c, 0.0, 1.0, text="a real number with 0 <= fixed_c <= 1")

        self.model = model
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("GradientCorrector: model has no parameter that requires a gradient")
        self._names = [n for n, _ in named]
        self._params = [p for _, p in named]
        self._index = {n: i for i, n in enumerate(self._names)}

        self.c_hat = self.c0
        self.c_hat_star = math.nan
        self.refreshes = 0
        self._snapshot: nn.Module | None = None
        self._snap_params: list[torch.Tensor] = []
        self._full_grad: list[torch.Tensor] = []
        self._correctable: list[torch.Tensor] = []
        self._partial: set[int] = set()          # indices whose correctable mask has a False
        self._keep: list[torch.Tensor | None] = [None] * len(self._names)  # last mask given
        self._refresh_hooks: list[Callable[["GradientCorrector", dict[str, float]], None]] = []
        # Diagnostics (Fig. 26): also take the full gradient at the previous θ̃ on the refresh's batches.
        self.snapshot_gradient_on_refresh = False
        # Speed options (see "Speed options" in the module docstring).
        self.fused = False
        self.c_hat_from_steps = False
        self._step_losses: list[tuple[torch.Tensor, torch.Tensor]] = []  # (L(θ_t), L(θ̃)) since the last refresh
        self._stashed: tuple[list[torch.Tensor | None], torch.Tensor] | None = None  # paired_backward_'s g(θ̃), L(θ̃)
        # growth 'corrected-gradient': g̃ before masking, and this step's g(θ̃) by parameter index
        self.keep_dense_full_grad = False
        self._dense_full_grad: list[torch.Tensor] = []
        self._last_old: dict[int, torch.Tensor] = {}

    # ---------------------------------------------------------------- coefficient

    @property
    def c(self) -> float:
        """The coefficient applied to the old gradient now (0 before the first refresh)."""
        if self._snapshot is None:
            return 0.0
        return COEFFICIENT_RULES[self.rule](self)

    @property
    def snapshot_model(self) -> nn.Module | None:
        """The snapshot θ̃ as a module (read it, don't train it); None before the first refresh."""
        return self._snapshot

    # ---------------------------------------------------------------- refresh

    def refresh(self, batches: Iterable[tuple[Any, Any]], loss_fn: LossFn) -> dict[str, float]:
        """One pass over the training set: ĉ*, ĉ, then θ̃ ← θ and g̃ ← mean gradient at θ.

        Returns ``{"c_hat_star", "c_hat", "c", "examples", "fwd_bwd", "snapshot_gradient"}``. With
        ``snapshot_gradient_on_refresh`` set (and a previous snapshot), the ĉ* pass at θ̃ also takes
        gradients: ``snapshot_gradient`` is then the full gradient at the previous θ̃ over the same
        batches (per parameter, weighted like g̃), else None.
        """
        model = self.model
        had_snapshot = self._snapshot is not None
        acc = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self._params]
        losses_cur: list[torch.Tensor] = []
        losses_old: list[torch.Tensor] = []
        examples = 0
        batch_sizes: list[int] = []
        mixing = ClassMixing()
        acc_old = ([torch.zeros_like(p, memory_format=torch.preserve_format) for p in self._snap_params]
                   if had_snapshot and self.snapshot_gradient_on_refresh else None)
        need_old = had_snapshot and (not self.c_hat_from_steps or acc_old is not None)
        snapshot_guard = (module_preserved(self._snapshot) if had_snapshot else contextlib.nullcontext())
        with rng_preserved(), module_preserved(model), snapshot_guard:
            for x, y in batches:
                n = _batch_size(x, y)
                batch_sizes.append(n)
                mixing.update(y)
                if need_old and self.fused:
                    self._sync_modes()
                    losses, _, grads, grads_old = self._paired(lambda m: _with_aux(_scalar_loss(loss_fn(m, x, y))))
                    with torch.no_grad():
                        for i, name in enumerate(self._names):
                            acc[i].add_(grads[name], alpha=n)
                            if acc_old is not None:
                                acc_old[i].add_(grads_old[name], alpha=n)
                    losses_cur.append(losses[0])
                    losses_old.append(losses[1])
                    examples += n
                    continue
                batch_rng = capture_rng_state() if need_old else None
                losses_cur.append(_accumulate_gradient(model, self._params, loss_fn, x, y, acc, n))
                if need_old:
                    after = capture_rng_state()
                    restore_rng_state(batch_rng)
                    self._sync_modes()
                    if acc_old is None:
                        with torch.no_grad():
                            losses_old.append(_scalar_loss(loss_fn(self._snapshot, x, y)).detach())
                    else:
                        losses_old.append(_accumulate_gradient(self._snapshot, self._snap_params, loss_fn, x, y,
                                                               acc_old, n))
                    restore_rng_state(after)
                examples += n
        local_examples = examples  # this rank's passes (the loop sums them over ranks)
        reduced = is_distributed()
        if reduced:  # the global batches' losses and g̃ (module docstring)
            with torch.no_grad():
                for a in acc + (acc_old or []):
                    a.div_(max(examples, 1))
            all_reduce_mean_(acc + (acc_old or []), weight=examples)
            losses_cur, losses_old, examples = self._global_losses(losses_cur, losses_old, batch_sizes)
        if examples == 0:
            raise ValueError("refresh: batches is empty (it must be the whole training set, each batch once)")
        warn_if_class_sorted(mixing, "GradientCorrector.refresh")

        if self.c_hat_from_steps:
            pairs, self._step_losses = self._step_losses, []
            c_star = (_loss_regression([p[0] for p in pairs], [p[1] for p in pairs]) if had_snapshot and pairs
                      else math.nan)
        else:
            c_star = _loss_regression(losses_cur, losses_old) if had_snapshot else math.nan
        if not math.isnan(c_star):
            self.c_hat = (1.0 - self.alpha) * self.c_hat + self.alpha * c_star
        self.c_hat_star = c_star

        with torch.no_grad():
            if not reduced:  # several ranks: g̃ is already the mean (above)
                for a in acc:
                    a.div_(examples)
            if self._snapshot is None:
                self._create_snapshot()
            else:
                self._copy_into_snapshot(dict(model.named_parameters()), dict(model.named_buffers()))
            self._full_grad = acc
            self._dense_full_grad = [a.clone() for a in acc] if self.keep_dense_full_grad else []
            self._correctable = [torch.ones_like(p, dtype=torch.bool) for p in self._params]
            self._partial = set()
            for i, keep in enumerate(self._keep):
                if keep is not None:
                    self._apply_mask(i, keep)
        self.refreshes += 1
        report = {"c_hat_star": c_star, "c_hat": self.c_hat, "c": self.c, "examples": examples,
                  "fwd_bwd": local_examples + (local_examples if need_old else 0),
                  "snapshot_gradient": None if acc_old is None else (
                      acc_old if reduced else [a.div_(examples) for a in acc_old])}
        for hook in self._refresh_hooks:
            hook(self, report)
        return report

    @staticmethod
    def _global_losses(losses_cur: list[torch.Tensor], losses_old: list[torch.Tensor], batch_sizes: list[int]
                       ) -> tuple[list[torch.Tensor], list[torch.Tensor], int]:
        """The global batches' mean losses from each rank's slice means, and the global example count."""
        sizes = torch.tensor(batch_sizes, dtype=torch.float64, device=losses_cur[0].device if losses_cur else None)
        weighted = [torch.stack([v.detach().double() for v in losses]) * sizes if losses else sizes.new_zeros(0)
                    for losses in (losses_cur, losses_old)]
        all_reduce_sum_([sizes, *weighted])
        means = [list(w / sizes) if len(w) else [] for w in weighted]
        return means[0], means[1], int(sizes.sum())

    def register_refresh_hook(self, hook: Callable[["GradientCorrector", dict[str, float]], None]) -> None:
        """Call ``hook(corrector, report)`` at the end of every :meth:`refresh` (new θ̃ and g̃ in place)."""
        self._refresh_hooks.append(hook)

    def full_gradient_state(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Copies of g̃ and of the correctable masks, per parameter ([] before the first refresh)."""
        return [g.clone() for g in self._full_grad], [c.clone() for c in self._correctable]

    # ---------------------------------------------------------------- correction

    def correct_(self, x: Any, y: Any, loss_fn: LossFn, *, rng_state: dict[str, Any] | None = None,
                 live_loss: torch.Tensor | None = None) -> int:
        """ĝ = g - c·g_old + c·g̃ into the live ``.grad``; returns the example-level passes spent.

        Call after ``loss.backward()`` on batch ``(x, y)`` and before ``optimizer.step()``.
        Parameters whose ``.grad`` is None are skipped. No-op (returns 0) before the first refresh
        and whenever ``c == 0``. ``rng_state`` (from :func:`capture_rng_state` just before the
        training forward) replays the training pass's randomness in the snapshot pass. With
        ``c_hat_from_steps``, ``live_loss`` (the batch's training loss) is required: it is paired
        with the loss at θ̃ on the same batch for the next ĉ* (when ``c == 0`` the loss at θ̃ is
        then taken by a forward only). After :meth:`paired_backward_` on the same batch the
        snapshot gradient it computed is used and no pass is spent here.
        """
        stashed, self._stashed = self._stashed, None
        self._last_old = {}
        if self._snapshot is None:
            return 0
        if self.c_hat_from_steps and live_loss is None:
            raise ValueError("correct_: c_hat_from_steps needs live_loss, the batch's training loss")
        c = self.c
        if c == 0.0:
            if not self.c_hat_from_steps:
                return 0
            with rng_preserved(), module_preserved(self._snapshot), torch.no_grad():
                if rng_state is not None:
                    restore_rng_state(rng_state)
                self._sync_modes()
                self._record_pair(live_loss, _scalar_loss(loss_fn(self._snapshot, x, y)), _batch_size(x, y))
            return _batch_size(x, y)
        active = [i for i, p in enumerate(self._params) if p.grad is not None]
        if not active:
            return 0
        passes = 0
        if stashed is not None:
            all_old, loss = stashed
            old_grads = [all_old[i] for i in active]
        else:
            snap_params = [self._snap_params[i] for i in active]
            with rng_preserved(), module_preserved(self._snapshot):
                if rng_state is not None:
                    restore_rng_state(rng_state)
                self._sync_modes()
                with torch.enable_grad():
                    loss = _scalar_loss(loss_fn(self._snapshot, x, y))
                    old_grads = torch.autograd.grad(loss, snap_params, allow_unused=True)
            passes = _batch_size(x, y)
            if is_distributed():  # the global batch's snapshot gradient, as the live one is
                present = [g for g in old_grads if g is not None]
                all_reduce_mean_(present, weight=passes)
        if self.c_hat_from_steps:
            self._record_pair(live_loss, loss, _batch_size(x, y))
        if self.keep_dense_full_grad:
            self._last_old = {i: g for i, g in zip(active, old_grads) if g is not None}
        with torch.no_grad():
            for i, g_old in zip(active, old_grads):
                delta = self._full_grad[i].clone() if g_old is None else self._full_grad[i] - g_old
                if i in self._partial:
                    delta.mul_(self._correctable[i])
                self._params[i].grad.add_(delta, alpha=c)
        return passes

    def _record_pair(self, live_loss: torch.Tensor, old_loss: torch.Tensor, n: int) -> None:
        """Keep the step's (L(θ_t), L(θ̃)) for ĉ*; over several ranks, the global batch's (weighted) means."""
        pair = torch.stack([live_loss.detach().double(), old_loss.detach().double()])
        if is_distributed():
            weighted = torch.cat([pair * n, pair.new_tensor([float(n)])])
            all_reduce_sum_([weighted])
            pair = weighted[:2] / weighted[2]
        self._step_losses.append((pair[0], pair[1]))

    @torch.no_grad()
    def corrected_everywhere(self, grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """ĝ = g − c·(g_old − g̃) at every position of the named parameters, masked ones included.

        The step's own correction (:meth:`correct_`) covers the positions active since the last
        refresh only; growth ``corrected-gradient`` scores the free positions with this instead.
        ``grads``: this step's raw g(θ) by parameter name; call after :meth:`correct_` on the same
        batch. g̃ is the refresh's full gradient before masking and g_old the snapshot's gradient of
        :meth:`correct_`; ``g`` itself before the first refresh and when ``c == 0``. Needs
        ``keep_dense_full_grad`` set before the refresh."""
        if not self.keep_dense_full_grad:
            raise RuntimeError("corrected_everywhere needs keep_dense_full_grad = True before the refresh")
        out = {}
        for name, g in grads.items():
            i = self._index[name]
            old = self._last_old.get(i)
            # the arithmetic of correct_ (g + c·(g̃ − g_old)), so active positions match the step's ĝ bit for bit
            out[name] = g if old is None or not self._dense_full_grad else \
                g.clone().add_(self._dense_full_grad[i] - old, alpha=self.c)
        return out

    def paired_backward_(self, loss_fn: Callable[[Any], tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, Any] | None:
        """The training backward and the snapshot gradient of :meth:`correct_` in one batched call.

        ``loss_fn(model)`` returns ``(mean loss, aux)`` of the step's batch (``model`` is a callable
        that runs the network at θ or at θ̃; see :func:`~agent_lab.optim.fused.paired_gradients_of`).
        Adds g(θ) to the live ``.grad`` (as ``loss.backward()`` would; BN running statistics updated
        as by one ordinary forward) and keeps g(θ̃) and the loss at θ̃ for the :meth:`correct_` that
        follows on the same batch. Returns ``(loss at θ, aux at θ)``, or None (nothing done) before
        the first refresh and when ``c == 0``: the caller then runs its ordinary backward.
        """
        if self._snapshot is None or self.c == 0.0:
            return None
        losses, aux, grads, grads_old = self._paired(loss_fn)  # the snapshot's buffers are only read
        with torch.no_grad():
            for name, p in zip(self._names, self._params):
                if p.grad is None:
                    p.grad = grads[name].clone()
                else:
                    p.grad.add_(grads[name])
        self._stashed = ([grads_old[n] for n in self._names], losses[1])
        return losses[0], aux

    def _paired(self, loss_fn: Callable[[Any], tuple[torch.Tensor, Any]]):
        other = dict(zip(self._names, self._snap_params))
        return paired_gradients_of(self.model, other, dict(self._snapshot.named_buffers()),
                                   lambda call: loss_fn(_Network(call)))

    # ---------------------------------------------------------------- sparse training

    def mask_state_(self, name: str, keep: torch.Tensor) -> None:
        """Zero g̃ of parameter ``name`` where ``keep`` is False; stop correcting there until refresh.

        The correctable mask of ``name`` becomes ``correctable & keep``, so a position dropped now
        and grown later gets the plain gradient until the next refresh. The latest ``keep`` given
        is remembered and re-applied at every refresh (g̃ zero and no correction outside it), so a
        caller that reports masks only when they change still gets "positions masked at the last
        refresh, grown later, get the plain gradient". Before the first refresh the mask is only
        remembered. The snapshot θ̃ itself is left unchanged (g̃ and g_old stay consistent).
        """
        if name not in self._index:
            raise ValueError(f"mask_state_: name={name!r} is not a trainable parameter of the model; "
                             f"valid names: {', '.join(self._names)}")
        i = self._index[name]
        param = self._params[i]
        if not isinstance(keep, torch.Tensor) or tuple(keep.shape) != tuple(param.shape):
            shape = tuple(keep.shape) if isinstance(keep, torch.Tensor) else type(keep).__name__
            raise ValueError(f"mask_state_: keep for {name!r} must be a tensor of shape "
                             f"{tuple(param.shape)}, got {shape}")
        keep = keep.detach().to(device=param.device, dtype=torch.bool).clone()
        self._keep[i] = keep
        if self._snapshot is not None:
            with torch.no_grad():
                self._apply_mask(i, keep)

    def _apply_mask(self, i: int, keep: torch.Tensor) -> None:
        self._full_grad[i].masked_fill_(~keep, 0)
        self._correctable[i].logical_and_(keep)
        if not bool(self._correctable[i].all()):
            self._partial.add(i)

    # ---------------------------------------------------------------- state

    def per_element_state(self) -> dict[str, list[torch.Tensor]]:
        """``{param_name: [snapshot tensor, g̃ tensor]}`` (the live state, not copies); {} before
        the first refresh."""
        if self._snapshot is None:
            return {}
        return {n: [self._snap_params[i], self._full_grad[i]] for i, n in enumerate(self._names)}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: snapshot parameters and buffers, g̃, ĉ, ĉ*, the
        refresh count, correctable masks and the remembered sparsity masks (all copies)."""
        state: dict[str, Any] = {
            "version": 1,
            "rule": self.rule,
            "c_hat": self.c_hat,
            "c_hat_star": self.c_hat_star,
            "refreshes": self.refreshes,
            "keep": {n: k.clone() for n, k in zip(self._names, self._keep) if k is not None},
            "snapshot": None,
            "full_grad": None,
            "correctable": None,
            "step_losses": [[float(a), float(b)] for a, b in self._step_losses],
        }
        if self._snapshot is not None:
            state["snapshot"] = {
                "parameters": {n: p.detach().clone() for n, p in self._snapshot.named_parameters()},
                "buffers": {n: b.detach().clone() for n, b in self._snapshot.named_buffers()},
            }
            state["full_grad"] = {n: g.clone() for n, g in zip(self._names, self._full_grad)}
            state["correctable"] = {n: m.clone() for n, m in zip(self._names, self._correctable)}
            if self._dense_full_grad:
                state["dense_full_grad"] = {n: g.clone() for n, g in zip(self._names, self._dense_full_grad)}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (the coefficient rule and hyper-parameters are
        the constructor's, not the state's)."""
        unknown = set(state.get("keep", {})) - set(self._names)
        if unknown:
            raise ValueError(f"load_state_dict: masks for unknown parameters {sorted(unknown)}")
        keep = [None if state.get("keep", {}).get(n) is None
                else state["keep"][n].to(device=p.device, dtype=torch.bool).clone()
                for n, p in zip(self._names, self._params)]
        snapshot = state["snapshot"]
        if snapshot is None:
            self._snapshot, self._snap_params = None, []
            self._full_grad, self._correctable, self._partial = [], [], set()
        else:
            for key in ("full_grad", "correctable"):
                missing = set(self._names) - set(state[key])
                if missing:
                    raise ValueError(f"load_state_dict: {key} lacks parameters {sorted(missing)}")
            with torch.no_grad():
                if self._snapshot is None:
                    self._create_snapshot()
                self._copy_into_snapshot(snapshot["parameters"], snapshot["buffers"])
                self._full_grad = [state["full_grad"][n].to(device=p.device, dtype=p.dtype).clone()
                                   for n, p in zip(self._names, self._params)]
                self._correctable = [state["correctable"][n].to(device=p.device, dtype=torch.bool).clone()
                                     for n, p in zip(self._names, self._params)]
                dense = state.get("dense_full_grad")
                self._dense_full_grad = [] if dense is None else [
                    dense[n].to(device=p.device, dtype=p.dtype).clone() for n, p in zip(self._names, self._params)]
            self._partial = {i for i, m in enumerate(self._correctable) if not bool(m.all())}
        self._keep = keep
        self.c_hat = float(state["c_hat"])
        self.c_hat_star = float(state["c_hat_star"])
        self.refreshes = int(state["refreshes"])
        device = self._params[0].device
        self._step_losses = [(torch.tensor(a, dtype=torch.float64, device=device),
                              torch.tensor(b, dtype=torch.float64, device=device))
                             for a, b in state.get("step_losses", [])]
        self._stashed = None
        self._last_old = {}

    # ---------------------------------------------------------------- internals

    def _create_snapshot(self) -> None:
        snapshot = copy_without_grads(self.model)
        by_name = dict(snapshot.named_parameters())
        self._snapshot = snapshot
        self._snap_params = [by_name[n] for n in self._names]

    def _copy_into_snapshot(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]) -> None:
        snapshot = self._snapshot
        for kind, source, target in (("parameters", params, dict(snapshot.named_parameters())),
                                     ("buffers", buffers, dict(snapshot.named_buffers()))):
            if set(source) != set(target):
                raise ValueError(f"the model's {kind} no longer match the snapshot's: "
                                 f"missing {sorted(set(target) - set(source))}, "
                                 f"unexpected {sorted(set(source) - set(target))}")
            for name, t in target.items():
                t.copy_(source[name])

    def _sync_modes(self) -> None:
        for live, snap in zip(self.model.modules(), self._snapshot.modules()):
            snap.training = live.training

    def __repr__(self) -> str:
        return (f"GradientCorrector(rule={self.rule!r}, gamma={self.gamma}, alpha={self.alpha}, "
                f"c0={self.c0}, fixed_c={self.fixed_c}; refreshes={self.refreshes}, "
                f"c_hat={self.c_hat:.6g}, c={self.c:.6g})")
