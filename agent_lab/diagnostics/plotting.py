"""Figure of the variance of the corrected gradient against c (Fig. 2 of the paper).

The quadratic Var[ĝ(c)] = V_g - 2c·C + c²·V_o of a :class:`VarianceCurve`, a horizontal line at
SGD's variance V_g (c = 0), and vertical markers at c* = C/V_o, at ĉ (``c_hat``) and at γĉ
(``gamma`` with ``c_hat``). The curve is drawn over the curve's grid widened to include every
marker. Nothing is written to disk; the Figure is returned.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validation import check_finite_real
from .variance_curve import VarianceCurve

__all__ = ["plot_c_hat_vs_correlation", "plot_variance_vs_c"]


def plot_variance_vs_c(curve: VarianceCurve, *, c_hat: float | None = None, gamma: float | None = None,
                       ax: Any = None) -> Any:
    """Plot ``curve`` (on ``ax`` or a new figure) with markers at c*, ĉ and γĉ; returns the Figure."""
    import matplotlib.pyplot as plt  # deferred: slow to import, needed only to draw
    import seaborn as sns

    if not isinstance(curve, VarianceCurve):
        raise TypeError(f"curve must be a VarianceCurve, got {type(curve).__name__}")
    if c_hat is not None:
        c_hat = check_finite_real("c_hat", c_hat)
    if gamma is not None:
        gamma = check_finite_real("gamma", gamma)
        if c_hat is None:
            raise ValueError("gamma: marking γĉ needs c_hat as well")
    markers = []
    if math.isfinite(curve.c_star):
        markers.append((curve.c_star, "c* = Cov/Var", "tab:green", "-"))
    if c_hat is not None:
        markers.append((c_hat, "ĉ", "tab:red", "--"))
        if gamma is not None:
            markers.append((gamma * c_hat, f"γĉ (γ={gamma:g})", "tab:purple", ":"))
    grid = curve.frame["c"].to_numpy()
    lo = min([float(grid.min())] + [m[0] for m in markers])
    hi = max([float(grid.max())] + [m[0] for m in markers])
    cs = np.linspace(lo, hi, 301) if hi > lo else grid
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
    else:
        fig = ax.figure
    sns.lineplot(x=cs, y=curve.at(cs), ax=ax, color="tab:blue", label="Var[ĝ(c)]")
    ax.axhline(curve.var_sgd, color="0.5", lw=1, ls="-.", label="SGD (c = 0)")
    for value, label, color, style in markers:
        ax.axvline(value, color=color, ls=style, lw=1.2, label=f"{label} = {value:.3g}")
        ax.plot([value], [curve.at(value)], "o", color=color, ms=4)
    ax.set_xlabel("c")
    ax.set_ylabel("tr Var of the corrected gradient")
    ax.set_title("Variance of ĝ(c) = g - c·g_old + c·g̃")
    ax.legend(fontsize="small")
    return fig


def plot_c_hat_vs_correlation(history: Any, *, ax: Any = None) -> Any:
    """Fig. 26: the loss-based ĉ* (``c_hat_star``) and the true gradient correlation (``grad_corr``) of
    a run trained with ``diagnostics="correlation"`` (or ``"all"``), per epoch; returns the Figure."""
    import matplotlib.pyplot as plt  # deferred: slow to import, needed only to draw
    import seaborn as sns

    missing = [c for c in ("epoch", "c_hat_star", "grad_corr") if c not in history]
    if missing:
        raise KeyError(f"history lacks {missing}: train with a correcting optimizer and diagnostics='correlation'")
    sns.set_theme(style="whitegrid", context="notebook")
    fig = ax.figure if ax is not None else plt.figure(figsize=(6, 3.6))
    ax = ax if ax is not None else fig.add_subplot()
    ax.plot(history["epoch"], history["c_hat_star"], marker="o", color="tab:orange", label="loss-based ĉ*")
    ax.plot(history["epoch"], history["grad_corr"], marker="o", color="tab:blue", label="gradient correlation")
    ax.set(xlabel="epoch", ylabel="value", title="ĉ* vs true correlation")
    ax.legend()
    fig.tight_layout()
    return fig
