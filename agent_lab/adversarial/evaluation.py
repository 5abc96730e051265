"""Robust accuracy with restarts (the paper's PGD-50 × 10 protocol).

An example is robust only if the model classifies it correctly *and* no restart of the attack
fools it. Restart ``r`` attacks only the examples still robust after restarts ``0..r-1`` (the
others are already lost), from a random start drawn by a generator seeded with ``(seed, r, batch)``,
so adding restarts can only lower robust accuracy and a result replays exactly.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .attacks import PGD, generator_for


@dataclass
class RobustResult:
    """Per-example outcome of a robust evaluation and its summary."""

    per_example: pd.DataFrame      # index, label, clean_pred, clean_correct, robust, fooled_at (-1 = never)
    attack: PGD
    restarts: int
    seconds: float = 0.0
    passes: int = 0                # example-level forward+backward passes spent by the attack
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.per_example)

    @property
    def clean_acc(self) -> float:
        return float(self.per_example["clean_correct"].mean()) if self.n else float("nan")

    @property
    def robust_acc(self) -> float:
        return float(self.per_example["robust"].mean()) if self.n else float("nan")

    def summary(self) -> dict:
        return {"n": self.n, "clean_acc": self.clean_acc, "robust_acc": self.robust_acc,
                "epsilon": self.attack.epsilon, "step_size": self.attack.step_size, "steps": self.attack.steps,
                "restarts": self.restarts, "bn_mode": self.attack.bn_mode, "seconds": self.seconds,
                "passes": self.passes}


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return model(x).argmax(1)
    finally:
        model.train(was_training)


def robust_evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], attack: PGD, *,
                    restarts: int = 1, seed: int = 0, progress: bool = False, total: int | None = None) -> RobustResult:
    """Attack every batch of ``batches`` (inputs in [0,1], labels) ``restarts`` times.

    Predictions are taken in eval mode. The model is left exactly as it was (mode, buffers,
    parameters, ``.grad``) and the global RNG is not touched.
    """
    if not isinstance(restarts, int) or isinstance(restarts, bool) or restarts < 1:
        raise ValueError(f"restarts: {restarts!r} is invalid; expected an integer >= 1")
    start = time.perf_counter()
    rows: list[pd.DataFrame] = []
    passes = 0
    offset = 0
    for b, (x, y) in enumerate(tqdm(batches, total=total, disable=not progress, desc="robust eval", leave=False)):
        clean_pred = _predict(model, x)
        robust = clean_pred == y
        fooled_at = torch.full_like(y, -1)
        for r in range(restarts):
            alive = robust.nonzero().flatten()
            if alive.numel() == 0:
                break
            x_adv = attack.perturb(model, x[alive], y[alive], generator=generator_for(x.device, seed, r, b))
            passes += alive.numel() * attack.passes_per_example
            fooled = _predict(model, x_adv) != y[alive]
            robust[alive[fooled]] = False
            fooled_at[alive[fooled]] = r
        n = y.shape[0]
        rows.append(pd.DataFrame({
            "index": range(offset, offset + n), "label": y.cpu().numpy(), "clean_pred": clean_pred.cpu().numpy(),
            "clean_correct": (clean_pred == y).cpu().numpy(), "robust": robust.cpu().numpy(),
            "fooled_at": fooled_at.cpu().numpy()}))
        offset += n
    per_example = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["index", "label", "clean_pred", "clean_correct", "robust", "fooled_at"])
    return RobustResult(per_example=per_example, attack=attack, restarts=restarts,
                        seconds=time.perf_counter() - start, passes=passes)
