"""Figures and tables: training curves as PNG + PDF, tables as CSV + Markdown."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def save_figure(fig: plt.Figure, stem: str | Path) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf``; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    return paths


def save_table(table: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Save ``table`` as ``stem.csv`` and ``stem.md``; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".csv"), stem.with_suffix(".md")]
    table.to_csv(paths[0], index=False)
    paths[1].write_text(table.to_markdown(index=False, floatfmt=".4g") + "\n")
    return paths


def tidy_histories(histories: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Stack several runs' histories into one long table with a ``run`` column."""
    frames = [h.assign(run=label) for label, h in histories.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_training_curves(histories: Mapping[str, pd.DataFrame], x: str = "epoch") -> plt.Figure:
    """Train loss and test accuracy against ``x`` (``epoch``, ``wall_time`` or ``fwd_bwd``) per run."""
    data = tidy_histories(histories)
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    sns.lineplot(data=data, x=x, y="train_loss", hue="run", marker="o", ax=axes[0])
    axes[0].set(title="training loss", ylabel="cross-entropy")
    evaluated = data.dropna(subset=["test_acc"])
    sns.lineplot(data=evaluated, x=x, y="test_acc", hue="run", marker="o", ax=axes[1])
    axes[1].set(title="test accuracy", ylabel="accuracy")
    for ax in axes:
        ax.set_xlabel({"epoch": "epoch", "wall_time": "training time (s)", "fwd_bwd": "forward+backward passes"}.get(x, x))
    fig.tight_layout()
    return fig


def plot_history_columns(histories: Mapping[str, pd.DataFrame], columns: tuple[str, ...] = ("test_acc", "robust_acc"),
                         x: str = "epoch") -> plt.Figure:
    """One panel per history column (e.g. clean and robust accuracy) against ``x``, a line per run.

    Rows where a column is empty (epochs without evaluation) are left out of that panel; a column
    no run has raises ``KeyError`` naming it and the columns there are.
    """
    data = tidy_histories(histories)
    missing = [c for c in columns if c not in data]
    if missing:
        raise KeyError(f"columns {missing} are not in the histories; available: {', '.join(data.columns)}")
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 3.6), squeeze=False)
    for ax, column in zip(axes[0], columns):
        sns.lineplot(data=data.dropna(subset=[column]), x=x, y=column, hue="run", marker="o", ax=ax)
        ax.set(title=column.replace("_", " "), ylabel=column)
    fig.tight_layout()
    return fig
