r"""Momentum-based variance reduction (MVR / STORM) as a gradient transform.

MVR keeps a running gradient estimate ``d`` and corrects the momentum with the change of the
gradient *on the current batch* between the previous and the current iterate:

    d_0 = g(θ_0; ξ_0)
    d_t = g(θ_t; ξ_t) + (1 − a)·(d_{t−1} − g(θ_{t−1}; ξ_t))        (t ≥ 1)

and the base optimizer (plain SGD, momentum 0) steps along ``d_t``. With ``a = 1`` this is SGD;
without the −(1 − a)·g(θ_{t−1}; ξ_t) term it would be SGD with heavy-ball momentum 1 − a.
Computing g(θ_{t−1}; ξ_t) costs one extra forward/backward per step, made on a private copy of the
model that holds θ_{t−1} (parameters and buffers as they were just before the previous optimizer
step).

Adaptive variant (STORM). With ``adaptive=True`` the step size and ``a`` follow the gradients seen:

    η_t = k / (w + Σ_{i≤t} ‖g_i‖²)^{1/3},        a_{t+1} = min(1, c·η_t²)

where ``g_i`` is the stochastic gradient MVR was fed at step i (the raw one, or AGENT's corrected one
with a corrector; restricted to unmasked positions when a sparsity mask is known). After
:meth:`MVR.transform_` the caller reads :attr:`MVR.lr` (η_t) and sets it on its optimizer before
``optimizer.step()``; MVR never touches the optimizer. With constant ``a``, :attr:`MVR.lr` is ``None``
and the caller's own lr schedule applies.

AGENT + MVR (``corrector=GradientCorrector``). MVR is then fed AGENT's corrected gradient
ĝ(θ; ξ) = g(θ; ξ) − c·g(θ̃; ξ) + c·g̃ (snapshot θ̃, full gradient g̃ and coefficient c held by the
corrector) at both points:

    d_t = ĝ(θ_t; ξ_t) + (1 − a)·(d_{t−1} − ĝ(θ_{t−1}; ξ_t)).

Done literally this needs g(θ_t), g(θ_{t−1}) and g(θ̃; ξ_t) twice (once inside each ĝ). But the
correction term δ_t = c·(g̃ − g(θ̃; ξ_t)) does not depend on θ (on the same batch, with the same
θ̃, g̃ and c), so it is the same at θ_t and θ_{t−1}:

    ĝ(θ_t; ξ_t) − ĝ(θ_{t−1}; ξ_t) = g(θ_t; ξ_t) − g(θ_{t−1}; ξ_t)

and therefore

    d_t = g(θ_t) + δ_t + (1 − a)·(d_{t−1} − g(θ_{t−1}) − δ_t)
        = g(θ_t) + (1 − a)·(d_{t−1} − g(θ_{t−1})) + a·c·(g̃ − g(θ̃; ξ_t)),

i.e. plain MVR on the raw gradients plus the AGENT correction scaled by a. One snapshot pass
(inside the corrector's ``correct_``, which yields ĝ(θ_t) and so δ_t = ĝ(θ_t) − g(θ_t)) and one
previous-iterate pass per step suffice: three forward/backward passes per step instead of four.
At t = 0, d_0 = ĝ(θ_0) = g(θ_0) + δ_0. The identity needs only that the corrector adds a
θ-independent term, which holds for every coefficient rule (c changes only at refreshes, between
steps).

Side effects. :meth:`MVR.transform_` writes ``p.grad ← d_t`` (a copy: ``d`` itself is private) and
leaves the live model's parameters, buffers (BatchNorm running statistics), train/eval mode of every
module and the global RNG states (torch CPU and CUDA, Python ``random``, NumPy) as they were. The
previous-iterate pass runs on the private copy in the live model's per-module modes; the RNG states
are captured before it and restored after, so the training stream is not advanced. Pass
``rng_state=capture_rng_state()`` taken just before the training forward to replay the training
pass's randomness (dropout masks) in the previous-iterate pass and in the corrector's snapshot pass;
without it those passes draw from the current state (then rolled back).

Sparsity. :meth:`MVR.mask_state_` (called by ``Sparsifier.follow`` after every mask change) zeroes
``d`` outside the mask and at newly grown positions, and zeroes the stored θ_{t−1} outside the mask,
so the difference g(θ_t) − g(θ_{t−1}) compares networks with the same connectivity (the live
weights there are zeroed by the sparsifier after the step). The last mask is remembered and ``d`` is
kept zero outside it at every step, so a position grown later starts from ``d = 0``.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..distributed import all_reduce_mean_, is_distributed
from .agent import _batch_size, capture_rng_state, restore_rng_state

__all__ = ["MVR"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], Any]


def _scalar_loss(out: Any) -> torch.Tensor:
    """``loss_fn`` may return the loss or a tuple whose first item is the loss."""
    return out[0] if isinstance(out, (tuple, list)) else out


class MVR:
    """MVR/STORM gradient transform for a live ``model`` trained by plain SGD (momentum 0).

    Use in any loop::

        loss = loss_fn(model, x, y); optimizer.zero_grad(); loss.backward()
        passes += mvr.transform_(x, y, loss_fn)      # p.grad <- d_t
        if mvr.lr is not None:                       # adaptive (STORM) only
            for group in optimizer.param_groups: group["lr"] = mvr.lr
        optimizer.step()

    ``loss_fn(model, x, y)`` returns the mean loss of the batch (or a tuple starting with it), the same
    callable the corrector's ``correct_`` takes. ``a`` (constant mode) is the weight of the fresh
    gradient; ``adaptive=True`` selects STORM's schedule with constants ``k``, ``w``, ``c`` and ignores
    ``a`` (the first step has d_0 = g_0, later ones use a_t = min(1, c·η_{t−1}²)).
    ``corrector`` (a ``GradientCorrector`` on the same model) turns this into AGENT+MVR (module
    docstring: one snapshot pass per step, not two). MVR's state (``state_dict``) does not include
    the corrector's: save that one separately.
    """

    def __init__(self, model: nn.Module, *, a: float = 0.1, adaptive: bool = False, k: float = 0.1,
                 w: float = 0.1, c: float = 100.0, corrector=None) -> None:
        if not 0.0 < float(a) <= 1.0:
            raise ValueError(f"a: must be in (0, 1], got {a!r}")
        for field, value in (("k", k), ("w", w), ("c", c)):
            if not float(value) > 0.0:
                raise ValueError(f"{field}: must be > 0, got {value!r}")
        self.model = model
        self.a_const = float(a)
        self.adaptive = bool(adaptive)
        self.k, self.w, self.c = float(k), float(w), float(c)
        self.corrector = corrector
        self.params: dict[str, nn.Parameter] = {n: p for n, p in model.named_parameters() if p.requires_grad}
        grads = [p.grad for p in model.parameters()]
        for p in model.parameters():  # keep the live gradients out of the copy
            p.grad = None
        try:
            self._prev = copy.deepcopy(model)
        finally:
            for p, g in zip(model.parameters(), grads):
                p.grad = g
        for p in self._prev.parameters():
            p.requires_grad_(False)
        self._prev_params = dict(self._prev.named_parameters())
        self._prev_buffers = dict(self._prev.named_buffers())
        self._live_params = dict(model.named_parameters())
        self._live_buffers = dict(model.named_buffers())
        self.d: dict[str, torch.Tensor] | None = None
        self.keep: dict[str, torch.Tensor] = {}
        self.step = 0
        self.sum_sq = 0.0
        self._a_next = self.a_const
        self._lr: float | None = None

    # --- public state ---------------------------------------------------------------------------

    @property
    def a(self) -> float:
        """The ``a`` the next :meth:`transform_` will use (adaptive: min(1, c·η_{t}²))."""
        return self._a_next

    @property
    def lr(self) -> float | None:
        """Adaptive mode: the step size η_t the optimizer must use for the coming step; else ``None``."""
        return self._lr

    # --- the transform --------------------------------------------------------------------------

    def transform_(self, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, *,
                   rng_state: dict[str, Any] | None = None) -> int:
        """Replace ``p.grad`` (the gradient at θ_t on batch ``(x, y)``) with the MVR estimate d_t.

        Call after ``loss.backward()`` and before ``optimizer.step()``. Stores θ_t (and the buffers)
        as the next step's previous iterate. Returns the example-level forward+backward passes it
        spent: ``len(x)`` for the previous-iterate pass (none at the first step) plus what the
        corrector's ``correct_`` reports. ``rng_state`` (from ``capture_rng_state()`` just before
        the training forward) replays the training pass's randomness in the auxiliary passes.
        """
        passes = 0
        for p in self.params.values():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        # raw: g(θ_t); fed: the gradient MVR is fed (ĝ(θ_t) with a corrector, else g(θ_t) itself)
        if self.corrector is not None:
            raw = {name: p.grad.detach().clone() for name, p in self.params.items()}
            passes += int(self.corrector.correct_(x, y, loss_fn, rng_state=rng_state))
        fed = {name: p.grad.detach() for name, p in self.params.items()}
        if self.corrector is None:
            raw = fed

        with torch.no_grad():
            if self.adaptive:
                total = 0.0
                for name, g in fed.items():
                    if name in self.keep:
                        g = g * self.keep[name]
                    total += float(g.double().square().sum())
                self.sum_sq += total
            if self.d is None:
                d = {name: g.clone() for name, g in fed.items()}
            else:
                a = self._a_next
                old = self._previous_gradients(x, y, loss_fn, rng_state)
                passes += int(x.shape[0])
                # d_t = ĝ_t + (1−a)(d_{t−1} − g(θ_{t−1}) − δ_t) with δ_t = ĝ_t − g_t, rearranged:
                # (1−a)(d_{t−1} − g(θ_{t−1})) + (1−a)·g_t + a·ĝ_t  (= plain MVR when ĝ_t = g_t)
                d = {}
                for name in fed:
                    dn = self.d[name].sub_(old[name]).mul_(1.0 - a)
                    if raw is fed:
                        dn.add_(fed[name])
                    else:
                        dn.add_(raw[name], alpha=1.0 - a).add_(fed[name], alpha=a)
                    d[name] = dn
            for name, keep in self.keep.items():
                d[name].mul_(keep)
            self.d = d
            for name, p in self.params.items():
                p.grad.copy_(d[name])
            if self.adaptive:
                eta = self.k / (self.w + self.sum_sq) ** (1.0 / 3.0)
                self._lr = eta
                self._a_next = min(1.0, self.c * eta * eta)
            self._store_previous()
        self.step += 1
        return passes

    def _previous_gradients(self, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
                            rng_state: dict[str, Any] | None) -> dict[str, torch.Tensor]:
        """g(θ_{t−1}; x, y) on the private copy, in the live model's modes, RNG states restored after."""
        for live_m, prev_m in zip(self.model.modules(), self._prev.modules()):
            prev_m.training = live_m.training
        names = list(self.params)
        prev = [self._prev_params[n] for n in names]
        saved = capture_rng_state()
        try:
            if rng_state is not None:
                restore_rng_state(rng_state)
            with torch.enable_grad():
                for p in prev:
                    p.requires_grad_(True)
                loss = _scalar_loss(loss_fn(self._prev, x, y))
                grads = torch.autograd.grad(loss, prev, allow_unused=True)
        finally:
            restore_rng_state(saved)
            for p in prev:
                p.requires_grad_(False)
                p.grad = None
        if is_distributed():  # the global batch's gradient at θ_{t−1}, as g(θ_t) in p.grad already is
            all_reduce_mean_([g for g in grads if g is not None], weight=_batch_size(x, y))
        return {n: torch.zeros_like(p) if g is None else g.detach() for n, p, g in zip(names, prev, grads)}

    @torch.no_grad()
    def _store_previous(self) -> None:
        """θ_{t−1} ← θ_t: the live parameters and buffers as they are now (before the step)."""
        for name, p in self._prev_params.items():
            p.copy_(self._live_params[name])
        for name, b in self._prev_buffers.items():
            b.copy_(self._live_buffers[name])

    # --- sparsity -------------------------------------------------------------------------------

    @torch.no_grad()
    def mask_state_(self, name: str, keep: torch.Tensor) -> None:
        """Follow the sparsity mask of parameter ``name``: zero ``d`` outside ``keep`` and at positions
        grown since the last mask (they start from ``d = 0``), zero θ_{t−1} outside ``keep``."""
        if name not in self.params:
            raise ValueError(f"mask_state_: name={name!r} is not a trainable parameter of the model")
        p = self.params[name]
        if keep.shape != p.shape:
            raise ValueError(f"keep[{name!r}]: shape {tuple(keep.shape)} differs from the parameter's {tuple(p.shape)}")
        keep = keep.to(device=p.device, dtype=p.dtype)
        if self.d is not None:
            self.d[name].mul_(keep)  # also zeroes grown positions: keep was 0 there at the last step
            old = self.keep.get(name)
            if old is not None:
                self.d[name].mul_(1.0 - keep * (1.0 - old))  # explicit: grown = keep & ~old
        self._prev_params[name].mul_(keep)
        self.keep[name] = keep.clone()

    # --- checkpoints ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step, "sum_sq": self.sum_sq, "a_next": self._a_next, "lr": self._lr,
            "a": self.a_const, "adaptive": self.adaptive, "k": self.k, "w": self.w, "c": self.c,
            "d": None if self.d is None else {n: t.detach().clone() for n, t in self.d.items()},
            "prev_params": {n: t.detach().clone() for n, t in self._prev_params.items()},
            "prev_buffers": {n: t.detach().clone() for n, t in self._prev_buffers.items()},
            "keep": {n: t.clone() for n, t in self.keep.items()},
        }

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for field in ("a", "adaptive", "k", "w", "c"):
            mine = getattr(self, "a_const" if field == "a" else field)
            if state[field] != mine:
                raise ValueError(f"state: {field}={state[field]!r} differs from this MVR's {mine!r}")
        self._load_tensors("prev_params", state["prev_params"], self._prev_params)
        self._load_tensors("prev_buffers", state["prev_buffers"], self._prev_buffers)
        if state["d"] is None:
            self.d = None
        else:
            self._check_names("d", state["d"], self.params)
            self.d = {n: state["d"][n].to(device=p.device, dtype=p.dtype).clone() for n, p in self.params.items()}
        self.keep = {n: t.to(device=self.params[n].device, dtype=self.params[n].dtype).clone()
                     for n, t in state["keep"].items()}
        self.step = int(state["step"])
        self.sum_sq = float(state["sum_sq"])
        self._a_next = float(state["a_next"])
        self._lr = None if state["lr"] is None else float(state["lr"])

    @staticmethod
    def _check_names(what: str, given: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> None:
        if set(given) != set(expected):
            raise ValueError(f"state[{what!r}]: names {sorted(given)} differ from the model's {sorted(expected)}")
        for n, t in expected.items():
            if given[n].shape != t.shape:
                raise ValueError(f"state[{what!r}][{n!r}]: shape {tuple(given[n].shape)} differs from {tuple(t.shape)}")

    def _load_tensors(self, what: str, given: Mapping[str, torch.Tensor], into: Mapping[str, torch.Tensor]) -> None:
        self._check_names(what, given, into)
        for n, t in into.items():
            t.copy_(given[n])
