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


def option_effects(the_plan: Plan, results: dict[tuple, object], tolerance: float = 1.0) -> pd.DataFrame:
    """One row per artifact arm and option (see the module docstring); ``results`` by run key."""
    rows = []
    for key, runs in the_plan.runs.items():
        if ":" not in key:
            continue
        artifact, option = key.split(":", 1)
        baseline = {(run.arm.label, run.seed): run for run in the_plan.runs[artifact]}
        by_arm: dict[str, list[tuple[dict, dict]]] = {}
        for run in runs:
            arm = run.arm.label[: -len(f" [{option}]")]
            base_run = baseline[(arm, run.seed)]
            by_arm.setdefault(arm, []).append((_final(results[base_run.key]), _final(results[run.key])))
        for arm, pairs in by_arm.items():
            base = pd.DataFrame([b for b, _ in pairs])
            variant = pd.DataFrame([v for _, v in pairs])
            diff = (variant["test_acc"] - base["test_acc"]).dropna()
            n = len(diff)
            se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
            mean = float(diff.mean()) if n else math.nan
            if n < 2 or math.isnan(se):
                reading = "not testable"
            elif abs(mean) + 2 * se <= tolerance:
                reading = "same accuracy"
            elif abs(mean) - 2 * se > tolerance:
                reading = "different accuracy"
            else:
                reading = "not testable"
            rows.append({
                "artifact": artifact, "arm": arm, "option": option, "seeds": len(pairs),
                "baseline_acc": float(base["test_acc"].mean()), "baseline_std": float(base["test_acc"].std(ddof=1)),
                "option_acc": float(variant["test_acc"].mean()), "option_std": float(variant["test_acc"].std(ddof=1)),
                "difference": mean, "difference_se": se, "reading": reading,
                "time_ratio": float(np.median(variant["epoch_s"] / base["epoch_s"])),
                "passes_ratio": float(np.median(variant["passes"] / base["passes"])),
                "diverged": int((variant["status"] == "diverged").sum())})
    return pd.DataFrame(rows)
