"""From finished runs to the :class:`~agent_lab.paper.claims.Measured` data of an artifact.

Renderers and claims read run folders only, through this module: the per-epoch history of every
run (accuracies in percent, the arm's label, facets and seed added), the accuracies at the
artifact's epoch budgets, and the checkpoint diagnostics an artifact declares (``sweep``: gradient
variance and correlation under perturbation, Fig. 1 / Table 7; ``variance_curve``: Var[ĝ] as a
function of c on an AGENT checkpoint, Fig. 2). Checkpoint diagnostics are cached in the run folder
(``paper_measurements.json``, keyed by what was measured and how), so redrawing costs seconds.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..runs import read_json, write_json
from .claims import Measured
from .plan import Run
from .scales import Scale

CACHE_FILE = "paper_measurements.json"
CLASSES = {"cifar100": 100, "imagenet": 1000}  # classes of the data sets that do not have 10
PERCENT_COLUMNS = ("train_acc", "test_acc", "robust_acc")
# Diagnostics settings per scale: (variance batches, replicates).
DIAGNOSTIC_SETTINGS = {"smoke": (3, 2), "cpu": (20, 3), "paper": (20, 3)}


def _cached(run_dir: Path, key: str, compute) -> Any:
    path = Path(run_dir) / CACHE_FILE
    cache = read_json(path) if path.exists() else {}
    if key not in cache:
        cache[key] = compute()
        write_json(path, cache)
    return cache[key]


def curves_of(results: Sequence[tuple[Run, Any]], facet_names: Sequence[str]) -> pd.DataFrame:
    """One row per (run, epoch): label, facets, seed, run folder, status and the history."""
    frames = []
    for run, result in results:
        history = result.history.copy()
        if "phase" in history.columns:  # HYDRA: the fine-tuning phase is the sparse model's training
            history = history[history["phase"] == history["phase"].iloc[-1]].copy()
            history["epoch"] = range(1, len(history) + 1)
        for column in PERCENT_COLUMNS:
            if column in history.columns:
                history[column] = 100.0 * history[column]
        facet = run.arm.facet
        history.insert(0, "label", run.arm.label)
        for position, name in enumerate(facet_names, start=1):
            history.insert(position, name, facet.get(name))
        history.insert(len(facet_names) + 1, "seed", run.seed)
        history["run"] = Path(result.run_dir).name
        history["status"] = result.status
        frames.append(history)
    if not frames:
        return pd.DataFrame(columns=["label", *facet_names, "seed", "epoch", "test_acc", "run", "status"])
    curves = pd.concat(frames, ignore_index=True)
    return _chance_after_divergence(curves)


def _chance_after_divergence(curves: pd.DataFrame) -> pd.DataFrame:
    """A diverged run counts at chance accuracy from its divergence to the scale's last epoch
    (those rows have ``at_chance`` True)."""
    last = int(curves["epoch"].max())
    extra = []
    for run, group in curves[curves["status"] == "diverged"].groupby("run", sort=False):
        tail = group.sort_values("epoch").iloc[-1]
        chance = 100.0 / CLASSES.get(tail.get("dataset"), 10) if "dataset" in group else 10.0
        for epoch in range(int(tail["epoch"]), last + 1):
            row = tail.copy()
            row["epoch"], row["test_acc"], row["at_chance"] = epoch, chance, True
            if "robust_acc" in row:
                row["robust_acc"] = math.nan if epoch != last else chance
            extra.append(row)
    curves = curves.assign(at_chance=False)
    if not extra:
        return curves
    kept = curves[~((curves["status"] == "diverged") & curves["test_acc"].isna())]
    merged = pd.concat([kept, pd.DataFrame(extra)], ignore_index=True)
    return merged.drop_duplicates(subset=["run", "epoch"], keep="last").sort_values(["run", "epoch"],
                                                                                     ignore_index=True)


def points_of(curves: pd.DataFrame, budgets: Sequence[int], paper_epochs: int, scale: Scale,
              facet_names: Sequence[str]) -> pd.DataFrame:
    """Accuracy at each epoch budget: ``budget`` the paper's epoch, ``epoch`` this scale's."""
    rows = []
    if curves.empty:
        return pd.DataFrame(columns=["label", *facet_names, "seed", "run", "budget", "epoch", "metric", "value"])
    for run, group in curves.groupby("run", sort=False):
        by_epoch = group.set_index("epoch")
        first = group.iloc[0]
        for budget in budgets:
            epoch = scale.budget(budget, paper_epochs)
            if epoch not in by_epoch.index:
                continue
            row = by_epoch.loc[epoch]
            for metric, column in (("clean_acc", "test_acc"), ("robust_acc", "robust_acc")):
                value = row.get(column, math.nan)
                if value is not None and not pd.isna(value):
                    rows.append({"label": first["label"], **{n: first[n] for n in facet_names}, "seed": first["seed"],
                                 "run": run, "budget": budget, "epoch": epoch, "metric": metric,
                                 "value": float(value)})
    return pd.DataFrame(rows, columns=["label", *facet_names, "seed", "run", "budget", "epoch", "metric", "value"])


def measure_sweep(results: Sequence[tuple[Run, Any]], scale: Scale, what: Sequence[str]) -> pd.DataFrame:
    """Gradient variance/correlation under perturbation of every finished run (Fig. 1, Table 7)."""
    from ..experiments.diagnose import diagnose_run

    batches, replicates = DIAGNOSTIC_SETTINGS[scale.name]
    frames = []
    for run, result in results:
        facet = run.arm.facet
        if result.status != "completed":
            continue
        rows = []
        for diagnostic in what:  # one cache entry each: Table 7's correlation serves Fig. 1 too
            key = f"sweep:{diagnostic}:batches={batches}:replicates={replicates}:sigma=0.015"
            rows += _cached(Path(result.run_dir), key, lambda: json.loads(diagnose_run(
                result.run_dir, [diagnostic], batches=batches, replicates=replicates, device=run.config.device,
                save=False).to_json(orient="records")))
        frame = pd.DataFrame(rows)
        frame["pipeline"] = facet.get("pipeline", run.config.pipeline)
        frame["sparsity"] = facet.get("sparsity", run.config.sparsity)
        frame["label"] = run.arm.label
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def measure_variance_curve(results: Sequence[tuple[Run, Any]], scale: Scale) -> dict[str, Any] | None:
    """Var[g − c·g_old + c·g̃] against c on the first finished AGENT run (Fig. 2)."""
    from ..diagnostics import variance_vs_c
    from ..experiments.diagnose import snapshot_of_run
    from ..train import prepare

    batches, _ = DIAGNOSTIC_SETTINGS[scale.name]
    for run, result in results:
        if run.config.optimizer != "agent" or result.status != "completed":
            continue

        def compute() -> dict[str, Any]:
            model, snapshot, info = snapshot_of_run(result.run_dir, run.config.device)
            loader = prepare(run.config)[0].train_loader
            curve = variance_vs_c(model, snapshot, [loader.batch(0, s) for s in range(min(batches, len(loader)))])
            c_hat, gamma = float(info["c_hat"]), float(info["gamma"])
            grid = [float(c) for c in curve.frame["c"]]
            return {"run": Path(result.run_dir).name, "c_hat": c_hat, "gamma": gamma, "c_applied": gamma * c_hat,
                    "c_star": float(curve.c_star), "var_sgd": float(curve.var_sgd), "cov": float(curve.cov),
                    "var_old": float(curve.var_old),
                    "var_at_c": float(curve.at(gamma * c_hat)), "var_at_c_hat": float(curve.at(c_hat)),
                    "var_at_c_star": float(curve.at(curve.c_star)), "c_grid": grid,
                    "variance": [float(curve.at(c)) for c in grid]}
        return _cached(Path(result.run_dir), f"variance_curve:batches={batches}", compute)
    return None


def measured(results: Sequence[tuple[Run, Any]], *, facet_names: Sequence[str], budgets: Sequence[int],
             paper_epochs: int, scale: Scale, extras: Sequence[str] = (), sweep_what: Sequence[str] = ()) -> Measured:
    curves = curves_of(results, facet_names)
    points = points_of(curves, budgets, paper_epochs, scale, facet_names)
    extra: dict[str, Any] = {}
    if "sweep" in extras:
        extra["sweep"] = measure_sweep(results, scale, sweep_what or ("variance", "correlation"))
    if "variance_curve" in extras:
        extra["variance_curve"] = measure_variance_curve(results, scale)
    return Measured(curves, points, tuple(facet_names), extra)
