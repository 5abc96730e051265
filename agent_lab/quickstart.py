"""``agent-lab quickstart``: a short real training on the bundled CIFAR-10 subset, on the CPU.

Trains a width-0.25 VGG-16 (the BSR-Net variant) on ``cifar10-mini`` (4,000 real training
images, 1,000 test images), prints the per-epoch table and writes the training curves.
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
    dataset="cifar10-mini", model="vgg16", width=0.25, pipeline="dense", optimizer="sgd", lr=0.05,
    momentum=0.9, weight_decay=5e-4, epochs=8, batch_size=128, lr_schedule="cosine", seed=0, device="cpu",
)

TABLE_COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "wall_time", "fwd_bwd"]


@dataclass
class QuickstartResult:
    run: RunResult
    table: pd.DataFrame
    figure_paths: list[Path]


def run_quickstart(out: str | Path = "runs/quickstart", figures: str | Path = "figures", epochs: int | None = None,
                   progress: bool = True, config: RunConfig = QUICKSTART_CONFIG) -> QuickstartResult:
    if epochs is not None:
        config = config.replace(epochs=epochs)
    run = train(config, out=out, progress=progress)
    table = run.history[TABLE_COLUMNS].round(4)
    fig = plot_training_curves({"VGG-16 x0.25, SGD": run.history})
    paths = save_figure(fig, Path(figures) / "quickstart")
    paths += save_table(table, Path(figures) / "quickstart")
    plt.close(fig)
    return QuickstartResult(run=run, table=table, figure_paths=paths)
