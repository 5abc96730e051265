"""Figures and tables: training curves as PNG + PDF, tables as CSV + Markdown.

Scales: every notebook runs at ``smoke`` (seconds, a code-path check at toy size: its numbers are
not results), ``cpu`` (a laptop CPU, minutes to an hour) or ``paper`` (a GPU). A notebook reads its
scale with :func:`notebook_scale` (``$AGENT_LAB_SCALE``, else ``cpu``; the test suite sets
``smoke``), and shows and saves through a :class:`ScaleReport`, which labels every figure and
table made at smoke scale with :data:`SMOKE_LABEL`.
"""
from __future__ import annotations

import html
import os
import pprint
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

SCALES = ("smoke", "cpu", "paper")
SCALE_ENV = "AGENT_LAB_SCALE"
DEFAULT_SCALE = "cpu"  # what a person opening a notebook gets: real data, minutes on a laptop
SMOKE_LABEL = "smoke scale: code-path check at toy size \u2014 these numbers are not results"
SMOKE_COLUMN_VALUE = "smoke (not a result)"
_LABEL_COLOR = "firebrick"


def notebook_scale(default: str = DEFAULT_SCALE, choices: Sequence[str] = SCALES) -> str:
    """The scale a notebook runs at: ``$AGENT_LAB_SCALE`` when set (the tests set ``smoke``), else ``default``."""
    scale = os.environ.get(SCALE_ENV, "").strip() or default
    if scale not in choices:
        raise ValueError(f"{SCALE_ENV}: {scale!r} is invalid; valid choices: {', '.join(choices)}")
    return scale


def project_folder(name: str, start: str | Path | None = None) -> Path:
    """``<project>/<name>`` (e.g. ``runs``, ``figures``): the project is the nearest folder from
    ``start`` (the working directory) upwards that holds ``pyproject.toml`` beside ``agent_lab/``,
    so a notebook in ``notebooks/`` shares the store and figures of ``agent-lab reproduce``; outside a
    checkout, ``start`` itself."""
    here = Path.cwd() if start is None else Path(start)
    for folder in (here, *here.resolve().parents):
        if (folder / "pyproject.toml").is_file() and (folder / "agent_lab").is_dir():
            return folder / name
    return here / name


def scale_label(scale: str | None) -> str | None:
    """The label every figure and table made at ``scale`` carries (smoke scale only), else None."""
    return SMOKE_LABEL if scale == "smoke" else None


def label_figure(fig: plt.Figure, scale: str | None) -> plt.Figure:
    """At smoke scale, add :data:`SMOKE_LABEL` to the figure's title (its suptitle), above the axes."""
    label = scale_label(scale)
    if label is None:
        return fig
    if hasattr(fig, "get_suptitle"):  # matplotlib >= 3.8
        title = fig.get_suptitle()
    else:
        title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    if label in title:
        return fig
    fig.suptitle(f"{title}\n{label}" if title else label, y=1.0, va="bottom", color=_LABEL_COLOR)
    return fig


def label_table(table: pd.DataFrame, scale: str | None) -> pd.DataFrame:
    """At smoke scale, a copy of ``table`` with a first column ``scale`` saying it is not a result."""
    if scale_label(scale) is None or "scale" in table.columns:
        return table
    return table.assign(scale=SMOKE_COLUMN_VALUE)[["scale", *table.columns]]


class Labelled:
    """An object as a notebook shows it, under a visible caption (the smoke label).

    Rich (HTML) and plain-text displays both show the caption first; ``.data`` is the object.
    """

    def __init__(self, data: Any, label: str) -> None:
        self.data, self.label = data, label

    def _repr_html_(self) -> str:
        inner = getattr(self.data, "_repr_html_", None)
        body = inner() if callable(inner) else None
        if body is None:
            body = f"<pre>{html.escape(pprint.pformat(self.data, width=100, sort_dicts=False))}</pre>"
        caption = f'<p style="color:{_LABEL_COLOR};font-weight:bold;margin:0 0 4px 0">{html.escape(self.label)}</p>'
        return f"<div>{caption}{body}</div>"

    def __repr__(self) -> str:
        return f"[{self.label}]\n{pprint.pformat(self.data, width=100, sort_dicts=False)}"


def show(data: Any, scale: str | None) -> Any:
    """What a notebook should display for ``data`` (a table, dict, result): captioned at smoke scale."""
    label = scale_label(scale)
    return data if label is None else Labelled(data, label)


def save_figure(fig: plt.Figure, stem: str | Path, scale: str | None = None) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf`` (labelled at smoke scale); returns both paths."""
    label_figure(fig, scale)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    # no creation date: the same figure redrawn gives the same bytes (no churn in committed figures)
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})
    return paths


def figure_png(fig: plt.Figure, dpi: int = 90) -> bytes:
    """``fig`` as PNG bytes (for a widget), the figure closed."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def save_table(table: pd.DataFrame, stem: str | Path, scale: str | None = None) -> list[Path]:
    """Save ``table`` as ``stem.csv`` and ``stem.md``; returns both paths.

    At smoke scale both files get a ``scale`` column and the Markdown file starts with the label.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".csv"), stem.with_suffix(".md")]
    table = label_table(table, scale)
    table.to_csv(paths[0], index=False)
    label = scale_label(scale)
    caption = f"*{label}*\n\n" if label else ""
    paths[1].write_text(caption + table.to_markdown(index=False, floatfmt=".4g") + "\n")
    return paths


@dataclass
class ScaleReport:
    """How a notebook shows and saves its figures and tables at one scale.

    ``report.figure(fig, "name")`` saves ``folder/name.{png,pdf}``, ``report.table(table, "name")``
    saves ``folder/name.{csv,md}`` and returns what to display, ``report.show(obj)`` returns what to
    display; at smoke scale all of them carry :data:`SMOKE_LABEL`.
    """

    scale: str
    folder: Path

    @classmethod
    def for_topic(cls, scale: str, topic: str, root: str | Path = "figures") -> "ScaleReport":
        """Figures of ``topic`` go to ``root/topic``; smoke-scale ones to ``root/smoke`` (not versioned)."""
        return cls(scale, Path(root) / ("smoke" if scale == "smoke" else topic))

    @property
    def label(self) -> str | None:
        return scale_label(self.scale)

    def figure(self, fig: plt.Figure, name: str) -> list[Path]:
        return save_figure(fig, self.folder / name, scale=self.scale)

    def table(self, table: pd.DataFrame, name: str | None = None) -> Any:
        if name is not None:
            save_table(table, self.folder / name, scale=self.scale)
        return self.show(table)

    def show(self, data: Any) -> Any:
        return show(data, self.scale)


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
