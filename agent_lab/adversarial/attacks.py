"""L∞ projected gradient descent (Madry et al. 2018) on inputs in [0, 1].

The model normalises its inputs itself (``agent_lab.models``), so ε, the step and the [0, 1]
clamp are all in pixel space: there is no double normalisation. While attacking, BatchNorm layers
run in eval mode by default (``bn_mode="eval"``: the attack sees the deterministic network that
evaluation sees and no running statistic moves); ``bn_mode="train"`` attacks the batch-statistics
network instead. Either way the model's modes, buffers, ``.grad`` and the global RNG states are
exactly as before the attack: the random start draws from a private generator.

Each iteration: ``x ← Π_{B∞(x0, ε) ∩ [0,1]}(x + step · sign(∇ₓ loss))``. The returned point is the
last iterate (the standard PGD of the literature, also what ``torchattacks.PGD`` returns).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..isolation import module_preserved, rng_preserved

RANDOM_STARTS = ("uniform", "normal", "none")
ATTACK_LOSSES = ("ce", "kl")
BN_MODES = ("eval", "train")

# TRADES starts its KL attack from x + 0.001·N(0, 1) (Zhang et al. 2019, official code).
TRADES_START_STD = 0.001


def _fail(name: str, value, expected: str) -> None:
    raise ValueError(f"PGD.{name}: {value!r} is invalid; {expected}")


@dataclass(frozen=True)
class PGD:
    """An L∞ PGD attack. ``perturb(model, x, y)`` returns adversarial inputs (detached).

    ``loss="ce"`` maximises the cross-entropy with the labels; ``loss="kl"`` maximises
    KL(p(x) ‖ p(x_adv)) with p(x) the model's clean prediction (TRADES' inner problem; labels unused).
    ``random_start``: ``uniform`` in the ε-ball (Madry), ``normal`` = x + 0.001·N(0,1) (TRADES),
    ``none``. ``steps=0`` returns the (clamped) random start.
    """

    epsilon: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10
    random_start: str = "uniform"
    loss: str = "ce"
    bn_mode: str = "eval"

    def __post_init__(self) -> None:
        for name, low in (("epsilon", 0.0), ("step_size", 0.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < low:
                _fail(name, value, "expected a finite number >= 0")
        if self.epsilon > 1:
            _fail("epsilon", self.epsilon, "inputs live in [0, 1]; expected epsilon in [0, 1]")
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 0:
            _fail("steps", self.steps, "expected an integer >= 0")
        for name, choices in (("random_start", RANDOM_STARTS), ("loss", ATTACK_LOSSES), ("bn_mode", BN_MODES)):
            if getattr(self, name) not in choices:
                _fail(name, getattr(self, name), f"valid choices: {', '.join(choices)}")

    def with_(self, **changes) -> "PGD":
        return replace(self, **changes)

    @property
    def passes_per_example(self) -> int:
        """Example-level forward+backward passes one :meth:`perturb` costs (a KL attack's clean
        reference forward is counted as a whole pass)."""
        return self.steps + (1 if self.loss == "kl" else 0)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                generator: torch.Generator | None = None,
                rows: tuple[int, int, int] | None = None) -> torch.Tensor:
        """Adversarial version of ``x`` (same shape, in the ε-ball around ``x`` and in [0, 1]).

        ``rows=(start, stop, total)``: ``x`` is rows ``start:stop`` of a batch of ``total`` (a
        data-parallel rank's slice): the random start is drawn for the whole batch and sliced, so the
        ranks together start where one process would."""
        x = x.detach()
        low, high = (x - self.epsilon).clamp_(min=0), (x + self.epsilon).clamp_(max=1)
        if self.epsilon == 0:
            return x.clone()
        # enable_grad: callers may attack inside no_grad (e.g. a loss evaluated for ĉ* only).
        with attacking(model, self.bn_mode), torch.enable_grad():
            reference = None
            if self.loss == "kl":
                with torch.no_grad():
                    reference = F.softmax(model(x), dim=1)
            x_adv = self._start(x, low, high, generator, rows)
            for _ in range(self.steps):
                x_adv.requires_grad_(True)
                logits = model(x_adv)
                if reference is None:
                    loss = F.cross_entropy(logits, y, reduction="sum")
                else:
                    loss = F.kl_div(F.log_softmax(logits, dim=1), reference, reduction="sum")
                (grad,) = torch.autograd.grad(loss, x_adv)
                with torch.no_grad():
                    x_adv = torch.minimum(torch.maximum(x_adv + self.step_size * grad.sign(), low), high)
        return x_adv.detach()

    def _start(self, x: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
               generator: torch.Generator | None, rows: tuple[int, int, int] | None = None) -> torch.Tensor:
        if self.random_start == "none":
            return x.clone()
        if generator is None:
            generator = torch.Generator(device=x.device)
            generator.manual_seed(0)
        start, stop, total = rows if rows is not None else (0, x.shape[0], x.shape[0])
        shape = (total, *x.shape[1:])
        if self.random_start == "uniform":
            noise = torch.rand(shape, generator=generator, device=x.device, dtype=x.dtype)[start:stop]
            noise = (2 * noise - 1) * self.epsilon
        else:
            noise = TRADES_START_STD * torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)[start:stop]
        return torch.minimum(torch.maximum(x + noise, low), high)


@contextlib.contextmanager
def attacking(model: nn.Module, bn_mode: str = "eval") -> Iterator[None]:
    """Run an attack: eval (or train) mode; modes, buffers, ``.grad`` and global RNG restored afterwards."""
    # The RNG is rolled back too: in train mode, dropout layers would draw from the global stream.
    with rng_preserved(), module_preserved(model):
        model.train(bn_mode == "train")
        yield


def generator_for(device: torch.device | str, *seeds: int) -> torch.Generator:
    """A private generator on ``device`` seeded from integers (e.g. run seed, epoch, step)."""
    g = torch.Generator(device=device)
    mixed = 0
    for s in seeds:
        mixed = (mixed * 1_000_003 + int(s) + 1) % (2 ** 62)
    g.manual_seed(mixed)
    return g


def named_attack(name: str, epsilon: float = 8 / 255, *, bn_mode: str = "eval") -> PGD:
    """The evaluation attacks by name: ``pgd10`` (the training attack: step 2/255 at ε = 8/255),
    ``pgd20`` and ``pgd50`` (step 2.5ε/steps, the paper's PGD-50 protocol; Madry et al.'s rule)."""
    if name not in EVAL_ATTACKS:
        raise ValueError(f"attack: {name!r} is unknown; valid choices: {', '.join(EVAL_ATTACKS)}")
    steps = EVAL_ATTACKS[name]
    step_size = epsilon / 4 if name == "pgd10" else 2.5 * epsilon / steps
    return PGD(epsilon=epsilon, step_size=step_size, steps=steps, bn_mode=bn_mode)


EVAL_ATTACKS = {"pgd10": 10, "pgd20": 20, "pgd50": 50}
