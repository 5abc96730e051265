"""Compare stored runs: pick them by their config fields, group the seeds of one config, draw seed bands.

:func:`run_index` lists the store with every config field; :func:`varying_fields` names the fields
that tell its runs apart; :func:`select_runs` keeps the runs whose fields take the chosen values;
:func:`run_histories` stacks their histories in one tidy frame whose ``group`` names each config
without its seed (the fields that vary, e.g. ``optimizer=agent, sparsity=0.99``);
:func:`plot_seed_bands` draws each group's mean over seeds with a ± std band.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ..runs import list_runs, load_run

X_AXES = {"epoch": "epoch", "wall_time": "training time (s)", "fwd_bwd": "forward+backward passes"}
HIDDEN_FIELDS = ("seed", "device", "data_root", "run", "status", "epoch", "test_acc", "wall_time", "fwd_bwd",
                 "heartbeat_age", "problem")


def run_index(out: str | Path) -> pd.DataFrame:
    """One row per readable run in the store ``out`` (damaged folders left out): run, status and config fields."""
    index = list_runs(out)
    if index.empty:
        return pd.DataFrame(columns=["run", "status"])
    return index[index["status"] != "damaged"].reset_index(drop=True)


def field_text(value: Any) -> str:
    """A config value as the text the filters compare (tuples joined by commas)."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def varying_fields(index: pd.DataFrame) -> list[str]:
    """The config fields that differ between the runs of ``index`` (seed and paths aside)."""
    fields = []
    for column in index.columns:
        if column in HIDDEN_FIELDS:
            continue
        if index[column].map(field_text).nunique(dropna=False) > 1:
            fields.append(column)
    return fields


def naming_fields(index: pd.DataFrame, fields: Sequence[str]) -> list[str]:
    """The ``fields`` needed to name the configs of ``index``: a field whose value follows from the
    fields kept before it (``c0=0`` whenever ``optimizer=agent``) is left out of the names; the first
    field is always kept, so a selection of one config is still named."""
    kept: list[str] = []
    for field in fields:
        text = index[field].map(field_text)
        if kept and text.groupby([index[k].map(field_text) for k in kept]).nunique().max() <= 1:
            continue
        kept.append(field)
    return kept


def select_runs(index: pd.DataFrame, chosen: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """The rows of ``index`` whose field takes one of the chosen values, for every field in ``chosen``
    (values compared as text, so ``0.9`` and ``"0.9"`` agree)."""
    keep = pd.Series(True, index=index.index)
    for field, values in chosen.items():
        if field not in index.columns:
            raise ValueError(f"{field}: not a field of the stored runs; valid choices: "
                             + ", ".join(c for c in index.columns if c not in HIDDEN_FIELDS))
        keep &= index[field].map(field_text).isin({field_text(v) for v in values})
    return index[keep]


def run_histories(out: str | Path, runs: pd.DataFrame, fields: Sequence[str] | None = None) -> pd.DataFrame:
    """The histories of ``runs`` (rows of :func:`run_index`) stacked: one row per (run, epoch) with
    ``run``, ``seed``, ``group`` (the ``fields`` that vary, seed excluded, those that follow from
    another left out: :func:`naming_fields`) and the history columns."""
    fields = naming_fields(runs, varying_fields(runs) if fields is None else fields)
    frames = []
    for _, row in runs.iterrows():
        history = load_run(Path(out) / row["run"], verify="none").history.copy()
        group = ", ".join(f"{field}={field_text(row[field])}" for field in fields) or "all runs"
        history.insert(0, "group", group)
        history.insert(1, "seed", row.get("seed"))
        history.insert(2, "run", row["run"])
        frames.append(history)
    if not frames:
        return pd.DataFrame(columns=["group", "seed", "run", "epoch"])
    return pd.concat(frames, ignore_index=True)


def history_columns(histories: pd.DataFrame) -> list[str]:
    """The numeric history columns one can plot (the x axes and bookkeeping aside)."""
    skip = {"seed", "epoch", "wall_time", "fwd_bwd", "eval_time"}
    return [c for c in histories.columns if c not in skip and pd.api.types.is_numeric_dtype(histories[c])]


def plot_seed_bands(histories: pd.DataFrame, columns: Sequence[str] = ("test_acc",), x: str = "epoch"):
    """One panel per column against ``x``: each group's mean over its seeds, with a ± std band.

    On ``wall_time`` / ``fwd_bwd`` the seeds of a group do not share x values; their mean is taken
    per epoch and drawn at the mean x of that epoch, so the band still spans the seeds."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if x not in X_AXES:
        raise ValueError(f"x: {x!r} is invalid; valid choices: {', '.join(X_AXES)}")
    missing = [c for c in columns if c not in histories.columns]
    if missing:
        raise ValueError(f"columns: {', '.join(missing)} not in the histories; valid choices: "
                         + ", ".join(history_columns(histories)))
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, max(1, len(columns)), figsize=(5.2 * max(1, len(columns)), 3.6), squeeze=False)
    for ax, column in zip(axes[0], columns):
        data = histories.dropna(subset=[column])
        if x != "epoch":  # seeds do not share x: average per (group, epoch)
            data = data.groupby(["group", "epoch"], as_index=False).agg(
                **{x: (x, "mean"), "mean": (column, "mean"), "std": (column, "std")})
            for group, part in data.groupby("group", sort=False):
                line, = ax.plot(part[x], part["mean"], marker="o", label=group)
                ax.fill_between(part[x], part["mean"] - part["std"].fillna(0), part["mean"] + part["std"].fillna(0),
                                color=line.get_color(), alpha=0.2)
        else:
            sns.lineplot(data=data, x=x, y=column, hue="group", errorbar="sd", marker="o", ax=ax)
        ax.set(xlabel=X_AXES[x], ylabel=column, title=column)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), bbox_to_anchor=(0.5, -0.02),
                   fontsize="small")
        fig.tight_layout(rect=(0, 0.08 + 0.04 * (len(labels) // 3), 1, 1))
    else:
        fig.tight_layout()
    return fig
