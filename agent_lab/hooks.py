"""Extension points of the training loop.

A :class:`Callback` sees the loop at fixed moments and may change the gradient the optimizer sees
(``before_optimizer_step``), act on the parameters after the step (``after_optimizer_step``),
add history columns (``epoch_metrics``) and carry state through checkpoints (``state_dict``).
Sparse masks, gradient correctors and diagnostics plug in here. An :class:`Objective` turns a batch
into a loss; adversarial objectives plug in there.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    import pandas as pd


class Loop(Protocol):
    """What a callback may see of the training loop (``agent_lab.train.Trainer`` is one).

    ``state`` carries the counters ``epoch`` (completed epochs), ``step`` (optimizer steps taken)
    and ``fwd_bwd``; ``count_passes(n)`` adds the example-level forward+backward passes of an
    auxiliary pass to ``fwd_bwd``; ``step_loss`` is the detached training loss of the current step;
    ``autocast()`` is the context the run's training passes run in (its ``precision``).
    """

    config: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    train_loader: Any
    device: torch.device
    objective: "Objective"
    state: Any

    step_loss: torch.Tensor | None

    def count_passes(self, examples: int) -> None: ...

    def autocast(self) -> Any: ...


class Callback:
    """Base class: every hook is a no-op. ``name`` keys the callback's state in checkpoints."""

    name = "callback"

    def on_train_begin(self, trainer: "Loop") -> None: ...

    def on_epoch_begin(self, trainer: "Loop") -> None: ...

    def backward(self, trainer: "Loop", batch: "Batch") -> "tuple[torch.Tensor, torch.Tensor] | None":
        """Fill ``.grad`` for this batch in place of the loop's ``loss.backward()`` and return
        ``(loss, logits)``; or return None (the default) to let the loop do it. The first callback
        that returns a result wins."""
        return None

    def before_optimizer_step(self, trainer: "Loop", batch: "Batch") -> None: ...

    def after_optimizer_step(self, trainer: "Loop", batch: "Batch") -> None: ...

    def epoch_metrics(self, trainer: "Loop") -> dict[str, float]:
        return {}

    def tables(self) -> dict[str, "pd.DataFrame"]:
        """Extra tables the run store writes as ``<name>.csv`` in the run folder after each epoch."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Batch:
    """One training batch: inputs in [0,1], labels, and where it came from (for exact replay).

    ``x_adv`` holds the adversarial inputs an adversarial objective prepared for this batch, so
    every pass over the batch (the training gradient, AGENT's old gradient, MVR's previous
    gradient) sees the same adversarial examples.
    """

    __slots__ = ("x", "y", "epoch", "step", "x_adv")

    def __init__(self, x: torch.Tensor, y: torch.Tensor, epoch: int, step: int,
                 x_adv: torch.Tensor | None = None) -> None:
        self.x, self.y, self.epoch, self.step, self.x_adv = x, y, epoch, step, x_adv

    def __len__(self) -> int:
        return self.y.shape[0]


class Objective:
    """Standard training: mean cross-entropy on the batch as given.

    ``prepare`` runs once per training batch before any loss (adversarial objectives attack there
    and store ``x_adv`` in the batch); ``loss`` returns the mean loss and the logits of a prepared
    batch; ``passes_per_example`` is the number of example-level forward+backward passes one
    ``prepare`` + ``loss`` costs (the loop adds it to ``fwd_bwd``); ``loss_passes_per_example`` those of
    one ``loss`` on an already prepared batch (what an auxiliary gradient on the same batch costs).
    """

    passes_per_example = 1
    loss_passes_per_example = 1

    def prepare(self, model: torch.nn.Module, batch: Batch) -> Batch:
        return batch

    def loss(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(batch.x)
        return F.cross_entropy(logits, batch.y), logits
