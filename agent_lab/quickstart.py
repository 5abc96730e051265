"""``agent-lab quickstart``: the paper's headline in miniature, on the CPU in a few minutes.

A width-0.125 VGG-16 (the BSR-Net variant) is trained on ``cifar10-mini`` (4,000 real CIFAR-10
training images, 1,000 test images) with RigL at 90% sparsity, once with SGD and once with AGENT,
from the same seed. The table puts test accuracy, compute (``fwd_bwd``) and wall-clock side by
side per epoch; the figure shows the curves against epochs and against compute. The settings are
``QUICKSTART_CONFIG`` (a test keeps this text in step with it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from .config import RunConfig
from .reporting import plot_training_curves, save_figure, save_table
from .runs import RunResult
from .train import train

QUICKSTART_CONFIG = RunConfig(
    dataset="cifar10-mini", model="vgg16", width=0.125, pipeline="rigl", sparsity=0.9, update_every=10,
    optimizer="sgd", lr=0.05, weight_decay=5e-4, epochs=8, batch_size=128, lr_schedule="cosine",
    seed=0, device="cpu",
)
QUICKSTART_OPTIMIZERS = {"SGD": "sgd", "AGENT": "agent"}


@dataclass
class QuickstartResult:
    runs: dict[str, RunResult]
    table: pd.DataFrame
    figure_paths: list[Path]


def side_by_side(runs: dict[str, RunResult]) -> pd.DataFrame:
    """One row per epoch: test accuracy, fwd_bwd and wall-clock of every run."""
    columns = {"test_acc": "acc", "fwd_bwd": "fwd_bwd", "wall_time": "time_s"}
    frames = [run.history.set_index("epoch")[list(columns)].rename(columns=lambda c: f"{columns[c]} {label}")
              for label, run in runs.items()]
    return pd.concat(frames, axis=1).reset_index().round(4)


def run_quickstart(out: str | Path = "runs/quickstart", figures: str | Path = "figures", epochs: int | None = None,
                   progress: bool = True, config: RunConfig = QUICKSTART_CONFIG,
                   optimizers: dict[str, str] = QUICKSTART_OPTIMIZERS) -> QuickstartResult:
    if epochs is not None:
        config = config.replace(epochs=epochs)
    runs = {label: train(config.replace(optimizer=name), out=out, progress=progress)
            for label, name in optimizers.items()}
    table = side_by_side(runs)
    histories = {label: run.history for label, run in runs.items()}
    paths = []
    for x in ("epoch", "fwd_bwd"):
        fig = plot_training_curves(histories, x=x)
        fig.suptitle(f"VGG-16 x{config.width:g}, {config.pipeline} {config.sparsity:.0%} sparse, cifar10-mini", y=1.03)
        paths += save_figure(fig, Path(figures) / f"quickstart_by_{x}")
        plt.close(fig)
    paths += save_table(table, Path(figures) / "quickstart")
    return QuickstartResult(runs=runs, table=table, figure_paths=paths)
