"""Renderers: an artifact's measured data drawn in the paper's layout, ours beside the paper's.

Each renderer takes the spec, its :class:`~agent_lab.paper.claims.Measured` data and the scale and
returns a :class:`Rendered`: tables (saved as CSV and Markdown) and figures (PNG and PDF). The
registry :data:`RENDERERS` maps the names specs use to them; a new layout is one function here
plus one line there.

* ``budget_table`` -- accuracy at the epoch budgets, mean ± std over seeds (clean and robust),
  beside the paper's numbers with the difference, and the same as lines against the budget.
* ``final_table`` -- the last budget only.
* ``curves`` -- test accuracy per epoch, seed mean with a ± std band; robust accuracy as markers
  where measured; a diverged seed drawn as an ``x`` where it diverged.
* ``epochs_to`` / ``hours_to`` -- epochs (or wall-clock hours and forward-backward passes) needed to
  reach accuracy levels (50-100 % of the lowest arm's best mean accuracy).
* ``sweep`` -- gradient variance and correlation against sparsity (Fig. 1, Table 7).
* ``variance_curve`` -- Var[ĝ] against c with c*, ĉ and γĉ marked (Fig. 2).
* ``c_hat_vs_correlation`` -- ĉ* and the full-gradient correlation per epoch (Fig. 26).

At a scale other than ``paper`` the paper's numbers are labelled "reference only".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .claims import Measured, accuracy_levels, epochs_to_reach  # noqa: E402
from .numbers import paper_numbers  # noqa: E402


@dataclass
class Rendered:
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


def _paper_label(scale: str) -> str:
    return "paper" if scale == "paper" else "paper (reference only)"


def _groups(frame: pd.DataFrame, facets: tuple[str, ...]) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per combination of facet values, in order of appearance."""
    if not facets or frame.empty:
        return [("", frame)]
    out = []
    for values, group in frame.groupby(list(facets), sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        out.append((", ".join(_facet_text(n, v) for n, v in zip(facets, values)), group))
    return out


def _facet_text(name: str, value: Any) -> str:
    if name == "sparsity" and isinstance(value, (int, float)):
        return f"{value:.0%} sparsity"
    return str(value)


def _grid(n: int, width: float = 4.2, height: float = 3.2) -> tuple[Any, list[Any]]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _no_data_figure(spec, message: str) -> Any:
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{spec.id}: {message}", ha="center", va="center", wrap=True)
    return fig


# ------------------------------------------------------------------------------------------------
# Tables of accuracy at budgets, beside the paper's numbers
# ------------------------------------------------------------------------------------------------

def ours_beside_paper(spec, measured: Measured, scale: str, final: bool = False) -> pd.DataFrame:
    """Tidy: arm, facets, budget, epoch, metric, ours (mean), ours_std, seeds, paper, paper_std, difference."""
    points = measured.points
    facets = list(measured.facets)
    columns = ["arm", *facets, "budget", "epoch", "metric", "ours", "ours_std", "seeds", "paper", "paper_std",
               "difference"]
    if points.empty:
        return pd.DataFrame(columns=columns)
    if final:
        points = points[points["budget"] == points["budget"].max()]
    stats = (points.groupby(["label", *facets, "budget", "epoch", "metric"], sort=False, dropna=False)["value"]
             .agg(["mean", "std", "count"]).reset_index())
    numbers = paper_numbers(spec.id)
    rows_of = {arm.label: arm.paper_row for arm in spec.all_arms()}
    out = []
    for _, row in stats.iterrows():
        facet = {name: row[name] for name in facets}
        paper, paper_std = math.nan, math.nan
        paper_row = rows_of.get(row["label"])
        if paper_row is not None and spec.paper_column is not None and not numbers.empty:
            column = spec.paper_column(facet, int(row["budget"]))
            metric = spec.paper_metrics.get(row["metric"], row["metric"])
            match = numbers[(numbers["row"] == paper_row) & (numbers["column"] == column)
                            & (numbers["metric"] == metric)]
            if len(match):
                paper, paper_std = float(match["value"].iloc[0]), float(match["std"].iloc[0])
        out.append({"arm": row["label"], **facet, "budget": int(row["budget"]), "epoch": int(row["epoch"]),
                    "metric": row["metric"], "ours": float(row["mean"]), "ours_std": float(row["std"]),
                    "seeds": int(row["count"]), "paper": paper, "paper_std": paper_std,
                    "difference": float(row["mean"]) - paper})
    return pd.DataFrame(out, columns=columns)


def _cell(mean: float, std: float) -> str:
    if mean is None or pd.isna(mean):
        return "–"
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ({std:.2f})"


def layout_table(tidy: pd.DataFrame, facets: tuple[str, ...], scale: str) -> pd.DataFrame:
    """The paper's layout: one row per setting and budget, one column per arm: ``ours | paper``."""
    if tidy.empty:
        return pd.DataFrame()
    reference = _paper_label(scale)
    rows = []
    for keys, group in tidy.groupby([*facets, "budget"], sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row = {name: _facet_text(name, value) if name == "sparsity" else value
               for name, value in zip([*facets, "budget"], keys)}
        row["epoch (this scale)"] = int(group["epoch"].iloc[0])
        for arm, arm_rows in group.groupby("arm", sort=False):
            by_metric = {r["metric"]: r for _, r in arm_rows.iterrows()}
            ours = "/".join(_cell(by_metric[m]["ours"], by_metric[m]["ours_std"]) for m in by_metric)
            paper = "/".join(_cell(by_metric[m]["paper"], by_metric[m]["paper_std"]) for m in by_metric)
            row[f"{arm}: ours"] = ours
            row[f"{arm}: {reference}"] = paper
        rows.append(row)
    return pd.DataFrame(rows)


def _budget_figure(spec, measured: Measured, tidy: pd.DataFrame, scale: str) -> Any:
    points = measured.points
    if points.empty:
        return _no_data_figure(spec, "nothing measured at this scale")
    groups = _groups(points, measured.facets)
    paper_groups = dict(_groups(tidy, measured.facets))
    fig, axes = _grid(len(groups))
    for ax, (title, group) in zip(axes, groups):
        colors = {}
        for (label, metric), rows in group.groupby(["label", "metric"], sort=False):
            stats = rows.groupby("budget")["value"].agg(["mean", "std"]).reset_index()
            style = "-o" if metric == "clean_acc" else "--s"
            line, = ax.plot(stats["budget"], stats["mean"], style, label=f"{label} ({metric.split('_')[0]})", ms=4)
            colors[(label, metric)] = line.get_color()
            ax.fill_between(stats["budget"], stats["mean"] - stats["std"].fillna(0),
                            stats["mean"] + stats["std"].fillna(0), color=line.get_color(), alpha=0.2)
        paper = paper_groups.get(title)
        if paper is not None and paper["paper"].notna().any():
            for (label, metric), rows in paper.dropna(subset=["paper"]).groupby(["arm", "metric"], sort=False):
                ax.plot(rows["budget"], rows["paper"], "x", color=colors.get((label, metric), "grey"), ms=6,
                        alpha=0.8)
            ax.plot([], [], "x", color="grey", label=_paper_label(scale))
        ax.set(title=title, xlabel="epoch budget (paper's epochs)", ylabel="accuracy (%)")
        ax.legend(fontsize=7)
    fig.suptitle(spec.title, fontsize=10)
    fig.tight_layout()
    return fig


def budget_table(spec, measured: Measured, scale: str, final: bool = False) -> Rendered:
    tidy = ours_beside_paper(spec, measured, scale, final=final)
    return Rendered({spec.id: layout_table(tidy, measured.facets, scale), "ours_beside_paper": tidy},
                    {spec.id: _budget_figure(spec, measured, tidy, scale)})


def final_table(spec, measured: Measured, scale: str) -> Rendered:
    return budget_table(spec, measured, scale, final=True)


# ------------------------------------------------------------------------------------------------
# Curves and the epochs/hours needed to reach an accuracy
# ------------------------------------------------------------------------------------------------

def curve_summary(curves: pd.DataFrame, facets: tuple[str, ...], columns=("test_acc", "robust_acc")) -> pd.DataFrame:
    present = [c for c in columns if c in curves.columns]
    if curves.empty:
        return pd.DataFrame()
    stats = curves.groupby(["label", *facets, "epoch"], sort=False, dropna=False)[present].agg(["mean", "std", "count"])
    stats.columns = [f"{a}_{b}" for a, b in stats.columns]
    return stats.reset_index()


def curves(spec, measured: Measured, scale: str) -> Rendered:
    data = measured.curves
    if data.empty:
        return Rendered({"curves": pd.DataFrame()}, {spec.id: _no_data_figure(spec, "nothing run at this scale")})
    groups = _groups(data, measured.facets)
    fig, axes = _grid(len(groups))
    for ax, (title, group) in zip(axes, groups):
        for label, rows in group.groupby("label", sort=False):
            stats = rows.groupby("epoch")["test_acc"].agg(["mean", "std"]).reset_index()
            line, = ax.plot(stats["epoch"], stats["mean"], marker="o", ms=2.5, label=label)
            ax.fill_between(stats["epoch"], stats["mean"] - stats["std"].fillna(0),
                            stats["mean"] + stats["std"].fillna(0), color=line.get_color(), alpha=0.2)
            if "robust_acc" in rows.columns and rows["robust_acc"].notna().any():
                robust = rows.dropna(subset=["robust_acc"]).groupby("epoch")["robust_acc"].mean()
                ax.plot(robust.index, robust.values, "s", color=line.get_color(), ms=4, mfc="none",
                        label=f"{label} (robust)")
            at_chance = rows["at_chance"].astype(bool) if "at_chance" in rows.columns else rows["status"] == "diverged"
            for _, run_rows in rows[at_chance].groupby("run"):
                first_chance = run_rows.sort_values("epoch").iloc[0]
                ax.plot(first_chance["epoch"], first_chance["test_acc"], "x", color=line.get_color(), ms=9, mew=2)
        ax.set(title=title, xlabel="epoch", ylabel="test accuracy (%)")
        ax.legend(fontsize=7)
    if (data["status"] == "diverged").any():
        fig.text(0.01, 0.01, "x: a seed diverged there (counted at chance afterwards)", fontsize=7)
    fig.suptitle(spec.title, fontsize=10)
    fig.tight_layout()
    return Rendered({"curves": curve_summary(data, measured.facets)}, {spec.id: fig})


def _reach_table(measured: Measured, x: str) -> pd.DataFrame:
    frames = []
    for _, group in _groups(measured.curves, measured.facets):
        if group.empty:
            continue
        reached = epochs_to_reach(group, accuracy_levels(group), x=x, facets=measured.facets)
        frames.append(reached)
    if not frames:
        return pd.DataFrame()
    reached = pd.concat(frames, ignore_index=True)
    return (reached.groupby(["label", *measured.facets, "level"], sort=False, dropna=False)["value"]
            .agg(["mean", "std", "count"]).reset_index().rename(columns={"mean": x, "std": f"{x}_std",
                                                                          "count": "seeds_reaching"}))


def _reach_figure(spec, measured: Measured, xs: tuple[tuple[str, str, float], ...]) -> Any:
    groups = _groups(measured.curves, measured.facets)
    if len(xs) == 1:
        fig, axes = _grid(len(groups))
    else:  # one row per measure (hours, passes), one column per setting
        fig, grid = plt.subplots(len(xs), len(groups), figsize=(4.2 * len(groups), 3.2 * len(xs)), squeeze=False)
        axes = list(grid.ravel())
    k = 0
    for column, unit, factor in xs:
        for title, group in groups:
            ax = axes[k]
            k += 1
            reached = epochs_to_reach(group, accuracy_levels(group), x=column, facets=measured.facets)
            for label, rows in reached.groupby("label", sort=False):
                stats = rows.groupby("level")["value"].agg(["mean", "std"]).reset_index()
                ax.errorbar(stats["level"], stats["mean"] * factor, yerr=stats["std"].fillna(0) * factor,
                            marker="o", ms=4, capsize=2, label=label)
            ax.set(title=title, xlabel="test accuracy reached (%)", ylabel=unit)
            ax.legend(fontsize=7)
    fig.suptitle(spec.title, fontsize=10)
    fig.tight_layout()
    return fig


def epochs_to(spec, measured: Measured, scale: str) -> Rendered:
    if measured.curves.empty:
        return Rendered({}, {spec.id: _no_data_figure(spec, "nothing run at this scale")})
    return Rendered({"epochs_to_reach": _reach_table(measured, "epoch")},
                    {spec.id: _reach_figure(spec, measured, (("epoch", "epochs", 1.0),))})


def hours_to(spec, measured: Measured, scale: str) -> Rendered:
    if measured.curves.empty:
        return Rendered({}, {spec.id: _no_data_figure(spec, "nothing run at this scale")})
    table = _reach_table(measured, "wall_time").merge(_reach_table(measured, "fwd_bwd"),
                                                      on=["label", *measured.facets, "level"],
                                                      suffixes=("", "_fwd_bwd"))
    table.insert(table.columns.get_loc("wall_time") + 1, "hours", table["wall_time"] / 3600)
    return Rendered({"hours_to_reach": table},
                    {spec.id: _reach_figure(spec, measured, (("wall_time", "hours (this machine)", 1 / 3600),
                                                             ("fwd_bwd", "forward-backward passes", 1.0)))})


# ------------------------------------------------------------------------------------------------
# Diagnostics
# ------------------------------------------------------------------------------------------------

def sweep(spec, measured: Measured, scale: str) -> Rendered:
    from ..experiments.sweep import correlation_table, plot_sparsity_sweep

    frame = measured.extra.get("sweep")
    if frame is None or frame.empty:
        return Rendered({}, {spec.id: _no_data_figure(spec, "no finished run to diagnose")})
    tables = {"sweep": frame}
    if (frame["metric"] == "grad_corr").any():
        ours = correlation_table(frame)
        numbers = paper_numbers("table7")
        reference = _paper_label(scale)
        paper_rows = []
        for name, rows in numbers.groupby("row", sort=False):
            paper_rows.append({"pipeline": f"{name} ({reference})",
                               **{r["column"]: f"{r['value']:.4f}" for _, r in rows.iterrows()
                                  if r["column"] in ours.columns}})
        ours = pd.concat([ours, pd.DataFrame(paper_rows)], ignore_index=True).fillna("")
        tables[spec.id] = ours
    figures = {spec.id: plot_sparsity_sweep(frame.drop(columns=["label"], errors="ignore"), title=spec.title)}
    return Rendered(tables, figures)


def variance_curve(spec, measured: Measured, scale: str) -> Rendered:
    curve = measured.extra.get("variance_curve")
    if curve is None:
        return Rendered({}, {spec.id: _no_data_figure(spec, "no finished AGENT run to measure")})
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    marks = [("SGD: c", 0.0, curve["var_sgd"]), ("c*", curve["c_star"], curve["var_at_c_star"]),
             ("ĉ", curve["c_hat"], curve["var_at_c_hat"]), ("γĉ", curve["c_applied"], curve["var_at_c"])]
    if "var_old" in curve:  # the exact quadratic, over a range that holds every mark
        cs = [c for _, c, _ in marks if c is not None and not pd.isna(c)] + [1.0]
        lo, hi = min(cs), max(cs)
        grid = [lo - 0.1 * (hi - lo) + i * 1.2 * (hi - lo) / 200 for i in range(201)]
        values = [curve["var_sgd"] - 2 * c * curve["cov"] + c * c * curve["var_old"] for c in grid]
    else:
        grid, values = curve["c_grid"], curve["variance"]
    ax.plot(grid, values, color="k", label="Var[g − c·g_old + c·g̃]")
    for name, c, value in marks:
        if c is not None and not pd.isna(c):
            ax.plot([c], [value], "o", label=f"{name} = {c:.3g} (variance {value:.3g})")
    ax.set(xlabel="c", ylabel="variance (trace)", title=spec.title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    table = pd.DataFrame([{k: v for k, v in curve.items() if k not in ("c_grid", "variance")}])
    return Rendered({spec.id: table}, {spec.id: fig})


def c_hat_vs_correlation(spec, measured: Measured, scale: str) -> Rendered:
    data = measured.curves
    if data.empty or "c_hat_star" not in data.columns or "grad_corr" not in data.columns:
        return Rendered({}, {spec.id: _no_data_figure(spec, "no AGENT run with diagnostics='correlation'")})
    data = data.dropna(subset=["c_hat_star", "grad_corr"])
    groups = _groups(data, measured.facets)
    fig, axes = _grid(len(groups))
    for ax, (title, group) in zip(axes, groups):
        stats = group.groupby("epoch")[["c_hat_star", "grad_corr"]].agg(["mean", "std"])
        for column, name in (("c_hat_star", "ĉ* (loss-based)"), ("grad_corr", "gradient correlation")):
            mean, std = stats[(column, "mean")], stats[(column, "std")].fillna(0)
            line, = ax.plot(stats.index, mean, marker="o", ms=3, label=name)
            ax.fill_between(stats.index, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        ax.set(title=title, xlabel="epoch", ylabel="value")
        ax.legend(fontsize=7)
    fig.suptitle(spec.title, fontsize=10)
    fig.tight_layout()
    table = curve_summary(data, measured.facets, ("c_hat_star", "grad_corr", "test_acc"))
    return Rendered({"c_hat_vs_correlation": table}, {spec.id: fig})


RENDERERS: dict[str, Callable[..., Rendered]] = {
    "budget_table": budget_table,
    "final_table": final_table,
    "curves": curves,
    "epochs_to": epochs_to,
    "hours_to": hours_to,
    "sweep": sweep,
    "variance_curve": variance_curve,
    "c_hat_vs_correlation": c_hat_vs_correlation,
}
