"""The training loop's view of a sparsifier: history columns, per-layer table, checkpointed state."""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..hooks import Callback
from .engine import Sparsifier


class SparsityCallback(Callback):
    """Reports ``density``, ``itop_rate`` and ``mask_change`` per epoch and per-layer densities.

    The sparsifier itself acts through the optimizer's step hooks; this callback only reads it
    and carries its state through checkpoints.
    """

    name = "sparsity"

    def __init__(self, sparsifier: Sparsifier) -> None:
        self.sparsifier = sparsifier
        self.layer_rows: list[dict[str, Any]] = []

    def epoch_metrics(self, trainer) -> dict[str, float]:
        metrics = self.sparsifier.metrics()
        self.layer_rows.append({"epoch": trainer.state.epoch, **self.sparsifier.masks.layer_densities()})
        return metrics

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"layer_density": pd.DataFrame(self.layer_rows)}

    def state_dict(self) -> dict[str, Any]:
        return {"sparsifier": self.sparsifier.state_dict(), "layer_rows": list(self.layer_rows)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sparsifier.load_state_dict(state["sparsifier"])
        self.layer_rows = list(state["layer_rows"])
