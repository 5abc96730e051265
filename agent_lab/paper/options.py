"""What the speed options do to accuracy: an artifact's arms trained again with each option, seed by seed.

An option is a set of config changes (:data:`SPEED_OPTIONS`). :func:`option_plan` adds, beside the
artifact's own runs (the baseline, shared with ``reproduce``), the same runs with each option; the
AGENT-only options apply to the arms that train with a snapshot-correcting optimizer, the others to
every arm. :func:`option_effects` compares each option's runs with the baseline runs of the same arm
and seed: the final test accuracy (mean ± std over seeds), the paired difference (mean ± standard
error over seeds), the median epoch's training time and the passes per epoch relative to the baseline, and a reading by
the README's rule for "similar" (held when the difference ± 2 SE lies within ``tolerance`` points).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..optim.correction import SNAPSHOT_CORRECTORS
from .claims import HELD, NOT_HELD, NOT_TESTABLE, within_tolerance
from .plan import Run
from .reproduce import Plan, plan

SPEED_OPTIONS: dict[str, dict] = {
    "fused": {"fused_passes": True},
    "c-hat from steps": {"c_hat_source": "steps"},
    "g-tilde on a quarter": {"full_pass_fraction": 0.25},
    "steps + quarter": {"c_hat_source": "steps", "full_pass_fraction": 0.25},
    "bf16": {"precision": "bf16"},
    "bf16 + channels_last": {"precision": "bf16", "channels_last": True},
}
AGENT_ONLY = ("fused_passes", "c_hat_source", "full_pass_fraction")
READINGS = {HELD: "same accuracy", NOT_HELD: "different accuracy", NOT_TESTABLE: "not testable"}
PAIR_KEYS = ["artifact", "arm", "option"]
EFFECT_COLUMNS = ["artifact", "arm", "option", "seeds", "baseline_acc", "baseline_std", "option_acc", "option_std",
                  "difference", "difference_se", "reading", "time_ratio", "passes_ratio", "diverged"]


def applies(option: str, run: Run) -> bool:
    changes = SPEED_OPTIONS[option]
    if any(name in AGENT_ONLY for name in changes):
        return run.config.optimizer in SNAPSHOT_CORRECTORS
    return run.arm.driver == "train"


def option_plan(ids: Iterable[str], scale: str = "cpu", options: Sequence[str] = tuple(SPEED_OPTIONS), *,
                seeds: int | None = None, device: str = "auto", labels: Iterable[str] | None = None,
                sparsities: Iterable[float] | None = None) -> Plan:
    """The artifacts' runs (key ``<id>``) and, per option, the same runs with it (key ``<id>:<option>``)."""
    unknown = [o for o in options if o not in SPEED_OPTIONS]
    if unknown:
        raise ValueError(f"options: {', '.join(unknown)} invalid; valid choices: {', '.join(SPEED_OPTIONS)}")
    base = plan(ids, scale, seeds=seeds, device=device, labels=labels, sparsities=sparsities)
    runs: dict[str, list[Run]] = {}
    for artifact, artifact_runs in base.runs.items():
        runs[artifact] = artifact_runs
        for option in options:
            changes = SPEED_OPTIONS[option]
            runs[f"{artifact}:{option}"] = [
                Run(dataclasses.replace(run.arm, label=f"{run.arm.label} [{option}]",
                                        config=run.arm.config.replace(**changes)),
                    run.seed, run.config.replace(**changes))
                for run in artifact_runs if applies(option, run)]
    return Plan(base.scale, runs)


def _final(result) -> dict[str, float]:
    history = result.history
    last = history.iloc[-1]
    epochs = max(len(history), 1)
    # The median epoch, not the mean: a run resumed on another machine or under another code version
    # (or trained beside a heavier process for a while) has epochs that say nothing of its option.
    epoch_seconds = history["wall_time"].diff().fillna(history["wall_time"])
    return {"test_acc": 100 * float(last["test_acc"]) if result.status == "completed" else math.nan,
            "epoch_s": float(epoch_seconds.median()), "passes": float(last["fwd_bwd"]) / epochs,
            "status": result.status}


def option_pairs(the_plan: Plan, results: dict[tuple, object]) -> pd.DataFrame:
    """One row per artifact arm, option and seed: the option's run beside the baseline run of the same
    arm and seed (final test accuracy in %, median epoch seconds, passes per epoch, status, run names)."""
    rows = []
    for key, runs in the_plan.runs.items():
        if ":" not in key:
            continue
        artifact, option = key.split(":", 1)
        baseline = {(run.arm.label, run.seed): run for run in the_plan.runs[artifact]}
        for run in runs:
            arm = run.arm.label[: -len(f" [{option}]")]
            base_run = baseline[(arm, run.seed)]
            base, variant = _final(results[base_run.key]), _final(results[run.key])
            rows.append({"artifact": artifact, "arm": arm, "option": option, "seed": run.seed,
                         "baseline_acc": base["test_acc"], "option_acc": variant["test_acc"],
                         "difference": variant["test_acc"] - base["test_acc"],
                         "baseline_epoch_s": base["epoch_s"], "option_epoch_s": variant["epoch_s"],
                         "baseline_passes": base["passes"], "option_passes": variant["passes"],
                         "option_status": variant["status"],
                         "baseline_run": base_run.config.run_name(), "option_run": run.config.run_name()})
    return pd.DataFrame(rows)


def option_effects(the_plan: Plan, results: dict[tuple, object], tolerance: float = 1.0) -> pd.DataFrame:
    """One row per artifact arm and option (see the module docstring); ``results`` by run key."""
    return effects_of(option_pairs(the_plan, results), tolerance)


def effects_of(pairs: pd.DataFrame, tolerance: float = 1.0) -> pd.DataFrame:
    """:func:`option_effects` from the per-seed rows of :func:`option_pairs`."""
    if pairs.empty:
        return pd.DataFrame([], columns=EFFECT_COLUMNS)
    rows = []
    for (artifact, arm, option), group in pairs.groupby(PAIR_KEYS, sort=False):
        diff = group["difference"].dropna()
        n = len(diff)
        se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        mean = float(diff.mean()) if n else math.nan
        reading = READINGS[within_tolerance(mean, se, tolerance)]
        rows.append({
            "artifact": artifact, "arm": arm, "option": option, "seeds": len(group),
            "baseline_acc": float(group["baseline_acc"].mean()), "baseline_std": float(group["baseline_acc"].std(ddof=1)),
            "option_acc": float(group["option_acc"].mean()), "option_std": float(group["option_acc"].std(ddof=1)),
            "difference": mean, "difference_se": se, "reading": reading,
            "time_ratio": float(np.median(group["option_epoch_s"] / group["baseline_epoch_s"])),
            "passes_ratio": float(np.median(group["option_passes"] / group["baseline_passes"])),
            "diverged": int((group["option_status"] == "diverged").sum())})
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def option_figure(pairs: pd.DataFrame, tolerance: float = 1.0):
    """Two panels per artifact arm: each seed's accuracy difference (option − baseline, points) with
    the mean ± 2 SE and the ±``tolerance`` band of the similarity rule; and the time per epoch
    relative to the baseline (median over seeds), beside the passes ratio."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    effects = effects_of(pairs, tolerance)
    labels = [f"{row.arm}\n{row.option}" for row in effects.itertuples()]
    y = np.arange(len(effects))[::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.55 * len(effects) + 2.0), sharey=True,
                                      gridspec_kw={"width_ratios": [3, 2]})
    left.axvspan(-tolerance, tolerance, color="0.9", label=f"±{tolerance:g} point (the rule for similar)")
    left.axvline(0, color="0.5", lw=0.8)
    for position, row, (_, seeds) in zip(y, effects.itertuples(), pairs.groupby(PAIR_KEYS, sort=False)):
        left.scatter(seeds["difference"], [position] * len(seeds), color="C0", s=18, alpha=0.7, zorder=3)
        if not math.isnan(row.difference_se):
            left.errorbar(row.difference, position, xerr=2 * row.difference_se, fmt="D", color="C3",
                          capsize=3, zorder=4)
    left.scatter([], [], color="C0", s=18, label="one seed")
    left.errorbar([], [], xerr=[], fmt="D", color="C3", label="mean ± 2 SE")
    left.set_yticks(y, labels)
    left.set_xlabel("final test accuracy: option − baseline (points)")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=7, frameon=False)
    right.barh(y + 0.18, effects["time_ratio"], height=0.35, color="C2", label="time per epoch")
    right.barh(y - 0.18, effects["passes_ratio"], height=0.35, color="0.6", label="passes per epoch")
    right.axvline(1, color="0.5", lw=0.8)
    right.set_xlabel("relative to the baseline")
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=7, frameon=False)
    fig.tight_layout()
    return fig
