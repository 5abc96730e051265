"""Gradient variance and correlation against sparsity (Fig. 1 and Table 7 of the paper).

Protocol. The paper (App. C.1, B.6) takes fully trained ResNet-50 / CIFAR-100 checkpoints of RigL
and SET at 0% (dense), 50%, 80%, 90% and 95% sparsity and, on each checkpoint,

* gradient variance (Fig. 1a): adds small Gaussian perturbations to the weights and computes the
  mean gradient variance, three replicates;
* gradient correlation (Fig. 1b, Table 7): computes the gradient of every weight on all training
  data, adds Gaussian perturbations (std 0.015) to all the weights, computes it again and reports
  the Pearson correlation of the two, three replicates.

:func:`sparsity_sweep` reproduces this on any :class:`~agent_lab.config.RunConfig`:

1. :func:`sweep_configs` derives one config per (pipeline, sparsity) from ``base`` with
   ``base.replace(pipeline=..., sparsity=...)`` (every other knob -- model, data, optimizer,
   epochs, schedule, seed, the explicit sparse knobs -- is kept). Sparsity 0 is the dense model:
   ``pipeline="dense"`` with every sparse knob unset (``dense_layers``/``skip_step_on_update``
   back to their defaults), one config shared by all pipeline labels, so it is trained once (the
   run store caches runs by config hash). ``static`` and ``bsr`` have no scheduled drop/grow
   updates, so ``update_every``, ``drop_fraction``, ``t_end`` and ``growth`` are unset for them.
2. Each distinct config is trained with :func:`agent_lab.train.train` into ``out`` (or loaded
   from the store when it has already been trained).
3. :func:`agent_lab.experiments.diagnose.diagnose_run` measures its final checkpoint: the
   variance across ``batches`` minibatches of the run's batch size (BN in train mode, float64)
   at the weights perturbed by N(0, ``variance_sigma``²), and the correlation of the full
   training-set gradients at w and w + N(0, ``sigma``²), each over ``replicates`` replicates, in
   class-mixed batches of the run's batch size (a seeded shuffled pass, never storage order);
   statistics over the active (unmasked) coordinates, the perturbation on every weight (the
   paper: "all the weights"; ``active_only=True`` keeps masked weights at 0).

Defaults and choices: ``sigma = 0.015`` and ``replicates = 3`` are the paper's. The paper gives
no σ for the variance perturbation; ``variance_sigma`` defaults to the same 0.015. It does not
say how many minibatches the variance uses either; ``batches = 20``. The sparsity grid
:data:`PAPER_SPARSITIES` adds 99% (listed in Table 7's caption, which reports no value for it, and
the paper's headline sparsity) to the figure's 0-95%. The paper's model and data (ResNet-50,
CIFAR-100, checkpoints of Sundar & Dwaraknath 2021) are whatever ``base`` says here.

The result is one tidy frame (the columns of ``diagnose_run`` plus the final ``test_acc`` and the
run's ``status``); ``pipeline`` holds the sweep's label, so the dense point appears under every
label, and ``run`` (the run folder) shows that those rows come from one run. A diverged run gets
rows with NaN values. :func:`plot_sparsity_sweep` draws Fig. 1, :func:`correlation_table`
Table 7, and :func:`sweep_trend` checks the paper's qualitative claims on the numbers.
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..config import RunConfig
from ..sparse.pipelines import SPARSE_PIPELINES
from ..diagnostics._validation import check_nonnegative, check_replicates, check_seed
from ..train import train
from .diagnose import CHECKPOINT_DIAGNOSTICS, diagnose_run

__all__ = ["PAPER_PIPELINES", "PAPER_SPARSITIES", "correlation_table", "plot_sparsity_sweep", "sparsity_sweep",
           "sweep_configs", "sweep_trend"]

PAPER_SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)
PAPER_PIPELINES = ("rigl", "set")

# Knobs that only apply to sparse pipelines (unset for the dense point).
_SPARSE_KNOBS = {"sparse_init": None, "update_every": None, "drop_fraction": None, "t_end": None, "growth": None,
                 "nm": None, "dense_layers": "none", "skip_step_on_update": False}
# Knobs of scheduled drop/grow updates, which static and bsr do not have.
_SCHEDULE_KNOBS = {"update_every": None, "drop_fraction": None, "t_end": None, "growth": None}
_NO_SCHEDULE = ("static", "bsr")
_LABELS = {"rigl": "RigL", "set": "SET", "static": "Static", "set-itop": "SET-ITOP", "rigl-itop": "RigL-ITOP",
           "bsr": "BSR-Net"}
_METRIC_TITLES = {"grad_var": "(a) gradient variance", "grad_corr": "(b) gradient correlation"}


# ------------------------------------------------------------------------------------------------
# Argument checks (all of them run before anything is trained or written)
# ------------------------------------------------------------------------------------------------

def _check_pipelines(pipelines: Any) -> tuple[str, ...]:
    values = (pipelines,) if isinstance(pipelines, str) else tuple(pipelines)
    if not values:
        raise ValueError("pipelines: is empty; give at least one of " + ", ".join(SPARSE_PIPELINES))
    bad = [p for p in values if not isinstance(p, str) or p not in SPARSE_PIPELINES]
    if bad:
        raise ValueError(f"pipelines: {bad!r} is invalid; valid choices: {', '.join(SPARSE_PIPELINES)} "
                         "(the dense model is sparsity 0 of every pipeline)")
    if len(set(values)) != len(values):
        raise ValueError(f"pipelines: {list(values)!r} holds duplicates")
    return values


def _check_sparsities(sparsities: Any) -> tuple[float, ...]:
    values = (sparsities,) if isinstance(sparsities, numbers.Number) else tuple(sparsities)
    if not values:
        raise ValueError("sparsities: is empty; give fractions in [0, 1)")
    out = []
    for s in values:
        ok = isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(float(s))
        if not ok or not 0.0 <= float(s) < 1.0:
            raise ValueError(f"sparsities: {s!r} is invalid; every sparsity must be a fraction in [0, 1)")
        out.append(float(s))
    if len(set(out)) != len(out):
        raise ValueError(f"sparsities: {list(values)!r} holds duplicates")
    return tuple(out)


def _check_what(what: Any) -> tuple[str, ...]:
    values = (what,) if isinstance(what, str) else tuple(what)
    bad = [w for w in values if w not in CHECKPOINT_DIAGNOSTICS]
    if bad or not values:
        raise ValueError(f"what: {bad or list(values)!r} is invalid; "
                         f"valid choices: {', '.join(CHECKPOINT_DIAGNOSTICS)}")
    return tuple(dict.fromkeys(values))


def _check_batches(batches: Any) -> int:
    if not isinstance(batches, numbers.Integral) or isinstance(batches, bool) or int(batches) < 2:
        raise ValueError(f"batches: {batches!r} is invalid; expected an integer >= 2")
    return int(batches)


# ------------------------------------------------------------------------------------------------
# Configs and the sweep
# ------------------------------------------------------------------------------------------------

def dense_config(base: RunConfig) -> RunConfig:
    """``base`` as a dense run: pipeline ``dense``, sparsity 0, every sparse knob unset."""
    return base.replace(pipeline="dense", sparsity=0.0, **_SPARSE_KNOBS)


def sweep_configs(base: RunConfig, pipelines: Sequence[str] = PAPER_PIPELINES,
                  sparsities: Sequence[float] = PAPER_SPARSITIES) -> list[tuple[str, float, RunConfig]]:
    """``(pipeline label, sparsity, config)`` for every pipeline x sparsity, in that order.

    Sparsity 0 gives :func:`dense_config` (the same config under every label); other sparsities
    give ``base.replace(pipeline=p, sparsity=s)``, with the drop/grow schedule knobs unset for
    ``static`` and ``bsr``. Raises ValueError (naming the argument) for an unknown pipeline or a
    sparsity outside [0, 1), and :class:`~agent_lab.config.ConfigError` for a config the
    combination makes invalid.
    """
    if not isinstance(base, RunConfig):
        raise TypeError(f"base must be a RunConfig, got {type(base).__name__}")
    pipelines = _check_pipelines(pipelines)
    sparsities = _check_sparsities(sparsities)
    dense = dense_config(base) if 0.0 in sparsities else None
    out = []
    for pipeline in pipelines:
        extra = _SCHEDULE_KNOBS if pipeline in _NO_SCHEDULE else {}
        for sparsity in sparsities:
            config = dense if sparsity == 0.0 else base.replace(pipeline=pipeline, sparsity=sparsity, **extra)
            out.append((pipeline, sparsity, config))
    return out


def _diverged_rows(config: RunConfig, run_dir: Path, what: Sequence[str], *, sigma: float, variance_sigma: float,
                   replicates: int) -> list[dict[str, Any]]:
    metrics = (["grad_var", "grad_var_trace"] if "variance" in what else []) + (
        ["grad_corr"] if "correlation" in what else [])
    return [{"run": run_dir.name, "pipeline": config.pipeline, "sparsity": config.sparsity,
             "optimizer": config.optimizer, "adversarial": config.adversarial, "seed": config.seed,
             "metric": metric, "value": math.nan, "std": math.nan, "replicates": replicates,
             "sigma": sigma if metric == "grad_corr" else variance_sigma, "batches": math.nan,
             "seconds": 0.0, "n_active": math.nan} for metric in metrics]


def sparsity_sweep(base: RunConfig, out: str | Path = "runs", *, pipelines: Sequence[str] = PAPER_PIPELINES,
                   sparsities: Sequence[float] = PAPER_SPARSITIES, what: Sequence[str] = CHECKPOINT_DIAGNOSTICS,
                   batches: int = 20, sigma: float = 0.015, variance_sigma: float = 0.015, replicates: int = 3,
                   active_only: bool = False, seed: int = 0, augment: bool = False, save: bool = True,
                   progress: bool = True) -> pd.DataFrame:
    """Train (or load) every config of :func:`sweep_configs` and diagnose its final checkpoint.

    Returns the tidy frame of :func:`~agent_lab.experiments.diagnose.diagnose_run` for every
    (pipeline label, sparsity) -- ``pipeline`` holds the label -- with the run's final ``test_acc``
    and ``status`` added. Each distinct run is trained and diagnosed once (the dense run serves
    every label). ``seed`` seeds the diagnostics (batch order, perturbations) and ``augment`` augments
    their passes (off: the gradients of the training images themselves); the training seed
    is ``base.seed``. ``save`` also merges the results into each run's ``diagnostics.json``.
    Every argument is checked before anything is trained or written.
    """
    what = _check_what(what)
    batches = _check_batches(batches)
    sigma = check_nonnegative("sigma", sigma)
    variance_sigma = check_nonnegative("variance_sigma", variance_sigma)
    replicates = check_replicates(replicates)
    seed = check_seed(seed)
    plan = sweep_configs(base, pipelines, sparsities)
    distinct = list(dict.fromkeys(config for _, _, config in plan))
    measured: dict[RunConfig, pd.DataFrame] = {}
    bar = tqdm(distinct, desc="sparsity sweep", disable=not progress)
    for config in bar:
        bar.set_postfix_str(f"{config.pipeline} {config.sparsity:.0%}")
        result = train(config, out=out, progress=progress)
        if result.status == "interrupted":
            raise KeyboardInterrupt(f"run {result.run_dir} was interrupted; call sparsity_sweep again to resume it")
        if result.status == "diverged":
            frame = pd.DataFrame(_diverged_rows(config, Path(result.run_dir), what, sigma=sigma,
                                                variance_sigma=variance_sigma, replicates=replicates))
            test_acc = math.nan
        else:
            frame = diagnose_run(result.run_dir, what, batches=batches, sigma=sigma, variance_sigma=variance_sigma,
                                 replicates=replicates, active_only=active_only, seed=seed, augment=augment,
                                 device=config.device, save=save)
            test_acc = float(result.history["test_acc"].iloc[-1]) if len(result.history) else math.nan
        measured[config] = frame.assign(test_acc=test_acc, status=result.status)
    frames = [measured[config].assign(pipeline=label) for label, _, config in plan]
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------------------------
# Figure, table and the paper's claims
# ------------------------------------------------------------------------------------------------

def _summary(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (pipeline, sparsity): mean ``value`` and its error ``std`` (one row: the replicate std;
    several rows, e.g. seeds: the std of their values, ddof=1), in the frame's pipeline order."""
    required = {"pipeline", "sparsity", "metric", "value", "std"}
    missing = required - set(frame.columns)
    if missing:
        raise ValueError(f"frame: missing column(s) {', '.join(sorted(missing))}; expected sparsity_sweep's frame")
    rows = frame[frame["metric"] == metric]
    out = []
    for (pipeline, sparsity), group in rows.groupby(["pipeline", "sparsity"], sort=False):
        values = group["value"].to_numpy(dtype=float)
        if len(values) == 1:
            mean, std = float(values[0]), float(group["std"].iloc[0])
        else:
            mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
        out.append({"pipeline": pipeline, "sparsity": float(sparsity), "value": mean, "std": std,
                    "n": len(values)})
    return pd.DataFrame(out, columns=["pipeline", "sparsity", "value", "std", "n"])


def _percent(sparsity: float) -> str:
    return f"{round(100 * sparsity, 6):g}"


def _pipelines_in_order(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["pipeline"]))


def plot_sparsity_sweep(frame: pd.DataFrame, *, log_variance: bool = False, title: str | None = None) -> Any:
    """Fig. 1: (a) ``grad_var`` and (b) ``grad_corr`` against sparsity, one line per pipeline.

    The x axis is categorical (sparsity in %, evenly spaced as in the paper); error bars are the
    std over replicates (over rows, e.g. seeds, when a point has several). Returns the Figure;
    nothing is written (see :func:`agent_lab.reporting.save_figure`).
    """
    import matplotlib.pyplot as plt  # deferred: slow to import, needed only to draw

    pipelines = _pipelines_in_order(frame) if "pipeline" in frame else []
    sparsities = sorted(float(s) for s in frame["sparsity"].unique()) if "sparsity" in frame else []
    position = {s: i for i, s in enumerate(sparsities)}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^v<>ph*"
    for ax, metric in zip(axes, ("grad_var", "grad_corr")):
        summary = _summary(frame, metric)
        for i, pipeline in enumerate(pipelines):
            points = summary[summary["pipeline"] == pipeline].sort_values("sparsity")
            if points.empty:
                continue
            ax.errorbar([position[s] for s in points["sparsity"]], points["value"], yerr=points["std"].fillna(0.0),
                        label=_LABELS.get(pipeline, pipeline), color=colors[i % len(colors)],
                        marker=markers[i % len(markers)], ms=5, capsize=3, lw=1.5)
        if summary.empty:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set_xticks(range(len(sparsities)))
        ax.set_xticklabels([_percent(s) for s in sparsities])
        ax.set_xlabel("sparsity (%)")
        ax.set_title(_METRIC_TITLES[metric])
        ax.grid(True, alpha=0.3)
        if not summary.empty:
            ax.legend(title="pipeline", fontsize="small")
    axes[0].set_ylabel("mean gradient variance")
    axes[1].set_ylabel("correlation (w vs. w + noise)")
    if log_variance:
        axes[0].set_yscale("log")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def correlation_table(frame: pd.DataFrame, *, numeric: bool = False, metric: str = "grad_corr",
                      fmt: str | None = None) -> pd.DataFrame:
    """Table 7: one row per pipeline (column ``pipeline``), one column per sparsity ("0%", "50%", ...).

    Cells are ``"mean ± std"`` strings (``fmt``: ``.4f`` for the correlation, ``.3e`` otherwise;
    empty where not measured), or with ``numeric=True`` the mean as a float (NaN where not
    measured). ``metric`` picks another measured metric (e.g. ``grad_var``). The pipeline is a
    column, so :func:`agent_lab.reporting.save_table` keeps it.
    """
    summary = _summary(frame, metric)
    if fmt is None:
        fmt = ".4f" if metric == "grad_corr" else ".3e"
    sparsities = sorted(summary["sparsity"].unique())
    columns = [f"{_percent(s)}%" for s in sparsities]
    rows = []
    for pipeline in _pipelines_in_order(frame):
        points = summary[summary["pipeline"] == pipeline].set_index("sparsity")
        row: dict[str, Any] = {"pipeline": pipeline}
        for s, column in zip(sparsities, columns):
            if s not in points.index:
                row[column] = math.nan if numeric else ""
            elif numeric:
                row[column] = float(points.loc[s, "value"])
            else:
                row[column] = f"{points.loc[s, 'value']:{fmt}} ± {points.loc[s, 'std']:{fmt}}"
        if not points.empty:
            rows.append(row)
    return pd.DataFrame(rows, columns=["pipeline", *columns])


def _at(values: dict[float, float], sparsity: float) -> float | None:
    for s, v in values.items():
        if math.isclose(s, sparsity, abs_tol=1e-9):
            return v
    return None


def _strictly(values: Iterable[float], decreasing: bool) -> bool:
    seq = list(values)
    pairs = zip(seq, seq[1:])
    return all((b < a) if decreasing else (b > a) for a, b in pairs)


def sweep_trend(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The paper's qualitative claims checked on a sweep's numbers, per pipeline.

    ``{pipeline: {"corr_lower_at_90": bool, "corr_lower_at_99": bool, "var_higher_at_90": bool,
    "var_higher_at_99": bool, "corr_decreasing": bool, "var_increasing": bool,
    "values": {"grad_corr": {sparsity: mean}, "grad_var": {sparsity: mean}}}}``.
    ``corr_lower_at_S``: corr(dense) > corr(S); ``var_higher_at_S``: var(S) > var(dense);
    ``corr_decreasing``/``var_increasing``: strictly monotone over every measured sparsity (Fig. 1:
    "grows/drops with increasing sparsity"). A key is present only when its values are measured
    (both the dense point and S, resp. at least two sparsities) and finite.
    """
    trend: dict[str, dict[str, Any]] = {}
    checks = (("grad_corr", "corr", "lower", True), ("grad_var", "var", "higher", False))
    summaries = {metric: _summary(frame, metric) for metric, *_ in checks}
    for pipeline in _pipelines_in_order(frame):
        result: dict[str, Any] = {}
        values: dict[str, dict[float, float]] = {}
        for metric, short, word, decreasing in checks:
            points = summaries[metric]
            points = points[points["pipeline"] == pipeline].sort_values("sparsity")
            series = {float(s): float(v) for s, v in zip(points["sparsity"], points["value"]) if math.isfinite(v)}
            values[metric] = series
            dense = _at(series, 0.0)
            for level in (0.9, 0.99):
                at = _at(series, level)
                if dense is not None and at is not None:
                    result[f"{short}_{word}_at_{_percent(level)}"] = bool(at < dense if decreasing else at > dense)
            if len(series) >= 2:
                name = f"{short}_{'decreasing' if decreasing else 'increasing'}"
                result[name] = _strictly(series.values(), decreasing)
        result["values"] = values
        trend[pipeline] = result
    return trend
