"""The paper's claims as checks the data decide: held, not held, or not testable at this scale.

A :class:`Claim` is a sentence and a check. A check reads the :class:`Measured` data of an
artifact (per-epoch curves of every run, accuracies at epoch budgets, diagnostics) and returns a
:class:`Verdict`. The rule (also in the README):

* **Comparisons** ("A is higher than B", "A converges faster"): in every cell (an epoch budget, or
  an epoch of the curves, in each setting the claim covers) take the seed means of A and B, their
  difference ``d`` and its standard error ``se = sqrt(s_A²/n_A + s_B²/n_B)`` (``s`` the std over
  seeds, ddof 1). Over the ``k`` cells, ``D`` is the mean of ``d`` and ``SE = sqrt(Σ se²) / k``.
  *Held* when ``D > 2 SE`` and A is ahead in at least half of the cells ("most"), or no cell has A
  behind by more than ``2 se`` ("all"); *not held* otherwise. Cells next to each other on a curve are
  not independent, so on curves ``SE`` is optimistic: read those verdicts with that in mind.
* **Trends** (variance up, correlation down with sparsity): held when the values at the highest
  sparsity and at the lowest differ in the stated direction by more than twice their combined
  error, and the Spearman rank correlation with sparsity has the stated sign and |ρ| ≥ 0.8.
* **Similarity** ("about as fast", "within 1 point"): held when ``D ± 2 SE`` lies inside the
  stated tolerance, not held when it lies outside, not testable when it straddles it (the data
  cannot tell at this precision; similarity is shown, not read from noise).
* *Not testable*: an arm the claim needs was not run at this scale (e.g. adversarial training at
  the cpu scale), or a cell has fewer than two seeds (no standard error), or the data the check
  needs are absent, or a similarity is too noisy to decide.

A run that diverged counts at chance accuracy from its divergence on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

HELD, NOT_HELD, NOT_TESTABLE = "held", "not held", "not testable"
VERDICTS = (HELD, NOT_HELD, NOT_TESTABLE)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    evidence: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"Verdict.verdict: {self.verdict!r} is invalid; valid choices: {', '.join(VERDICTS)}")


@dataclass
class Measured:
    """What an artifact's renderer and claims read.

    ``curves``: one row per (run, epoch) with ``label``, the arm's facets, ``seed``, ``run``,
    ``status`` and the history columns (accuracies in percent). ``points``: accuracies at the epoch
    budgets (``budget`` the paper's epoch, ``epoch`` the scale's), columns ``metric``, ``value``.
    ``extra``: frames of checkpoint diagnostics by name.
    """

    curves: pd.DataFrame
    points: pd.DataFrame
    facets: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


Check = Callable[[Measured], Verdict]


@dataclass(frozen=True)
class Claim:
    text: str
    check: Check | None = None  # None: the data of any scale here cannot decide it

    def decide(self, measured: Measured) -> Verdict:
        if self.check is None:
            return Verdict(NOT_TESTABLE, "no check: the claim needs data this toolkit does not produce")
        try:
            return self.check(measured)
        except _Untestable as reason:
            return Verdict(NOT_TESTABLE, str(reason))


class _Untestable(Exception):
    pass


def _select(frame: pd.DataFrame, where: dict[str, Any] | None) -> pd.DataFrame:
    for name, value in (where or {}).items():
        if name not in frame.columns:
            raise _Untestable(f"no data with {name} = {value}")
        values = value if isinstance(value, (list, tuple, set)) else [value]
        frame = frame[frame[name].isin(values)]
    if where and frame.empty:
        wanted = "; ".join(f"{name} {', '.join(map(str, v)) if isinstance(v, (list, tuple, set)) else v}"
                           for name, v in where.items())
        raise _Untestable(f"no run with {wanted} at this scale")
    return frame


def _cells(frame: pd.DataFrame, a: str, b: str, value: str, keys: Sequence[str]) -> pd.DataFrame:
    """Per cell: seed mean, std and count of arms ``a`` and ``b``."""
    for label in (a, b):
        if not (frame["label"] == label).any():
            raise _Untestable(f"'{label}' was not run at this scale")
    stats = (frame[frame["label"].isin([a, b])].dropna(subset=[value])
             .groupby(list(keys) + ["label"])[value].agg(["mean", "std", "count"]).unstack("label"))
    stats = stats.dropna(subset=[("mean", a), ("mean", b)])
    if stats.empty:
        raise _Untestable(f"'{a}' and '{b}' share no cell")
    if (stats[("count", a)] < 2).any() or (stats[("count", b)] < 2).any():
        raise _Untestable("fewer than two seeds: no standard error (use --seeds 2 or more)")
    d = stats[("mean", a)] - stats[("mean", b)]
    se = np.sqrt(stats[("std", a)] ** 2 / stats[("count", a)] + stats[("std", b)] ** 2 / stats[("count", b)])
    return pd.DataFrame({"d": d, "se": se})


def _comparison(cells: pd.DataFrame, quantifier: str, a: str, b: str, unit: str) -> Verdict:
    k = len(cells)
    mean = float(cells["d"].mean())
    se = float(math.sqrt((cells["se"] ** 2).sum()) / k)
    ahead = int((cells["d"] > 0).sum())
    behind = int((cells["d"] < -2 * cells["se"]).sum())
    significant = mean > 2 * se
    held = significant and (ahead * 2 >= k if quantifier == "most" else behind == 0)
    evidence = (f"{a} − {b}: mean {mean:+.2f} {unit} (SE {se:.2f}) over {k} cells; ahead in {ahead}/{k}"
                + (f", behind by > 2 se in {behind}" if behind else ""))
    return Verdict(HELD if held else NOT_HELD, evidence)


def better(a: str, b: str, *, metric: str = "clean_acc", where: dict[str, Any] | None = None,
           quantifier: str = "most", final: bool = False, budgets: Sequence[int] | None = None) -> Check:
    """``a``'s accuracy at the epoch budgets (``final``: the last one; ``budgets``: those) exceeds ``b``'s."""
    def check(measured: Measured) -> Verdict:
        points = _select(measured.points, where)
        points = points[points["metric"] == metric]
        if budgets is not None:
            points = points[points["budget"].isin(budgets)]
        if points.empty:
            raise _Untestable(f"no {metric} was measured at this scale")
        if final:
            points = points[points["budget"] == points["budget"].max()]
        keys = list(measured.facets) + ["budget"]
        return _comparison(_cells(points, a, b, "value", keys), quantifier, a, b, "points")
    return check


def faster(a: str, b: str, *, metric: str = "test_acc", where: dict[str, Any] | None = None,
           epochs: tuple[float, float] = (0.0, 1.0), quantifier: str = "most") -> Check:
    """``a``'s curve lies above ``b``'s over the fraction ``epochs`` of training (area between curves)."""
    def check(measured: Measured) -> Verdict:
        curves = _select(measured.curves, where)
        if curves.empty or metric not in curves.columns:
            raise _Untestable(f"no {metric} curves at this scale")
        last = curves["epoch"].max()
        curves = curves[(curves["epoch"] > epochs[0] * last) & (curves["epoch"] <= epochs[1] * last)]
        keys = list(measured.facets) + ["epoch"]
        return _comparison(_cells(curves, a, b, metric, keys), quantifier, a, b, "points")
    return check


def epochs_to_reach(curves: pd.DataFrame, levels: Sequence[float], x: str = "epoch", metric: str = "test_acc",
                    facets: Sequence[str] = ()) -> pd.DataFrame:
    """Per run and level: the first ``x`` (epoch, wall_time, fwd_bwd) at which ``metric`` ≥ level (NaN: never)."""
    rows = []
    for run, group in curves.sort_values("epoch").groupby("run", sort=False):
        first = group.iloc[0]
        for level in levels:
            reached = group[group[metric] >= level]
            rows.append({**{c: first[c] for c in (*facets, "label", "seed")},
                         "run": run, "level": float(level),
                         "value": float(reached[x].iloc[0]) if len(reached) else math.nan})
    return pd.DataFrame(rows)


def accuracy_levels(curves: pd.DataFrame, count: int = 6, metric: str = "test_acc") -> list[float]:
    """Accuracy levels every compared arm reaches: evenly from 50 % to 100 % of the lowest arm's
    best seed-mean accuracy (rounded to 0.1 point)."""
    best = curves.groupby(["label", "epoch"])[metric].mean().groupby("label").max()
    top = float(best.min())
    return [round(top * f, 1) for f in np.linspace(0.5, 1.0, count)]


def fewer_epochs(a: str, b: str, *, x: str = "epoch", where: dict[str, Any] | None = None) -> Check:
    """``a`` reaches each accuracy level in less ``x`` than ``b`` (a run that never reaches a level
    counts as the whole run's length plus one epoch's worth)."""
    def check(measured: Measured) -> Verdict:
        curves = _select(measured.curves, where)
        facet_keys = list(measured.facets)
        frames = []
        for _, group in (curves.groupby(facet_keys, sort=False) if facet_keys else [((), curves)]):
            if not {a, b} <= set(group["label"]):
                continue
            pair = group[group["label"].isin([a, b])]
            reached = epochs_to_reach(pair, accuracy_levels(pair), x=x, facets=facet_keys)
            ceiling = pair.groupby("run")[x].max().max() * (1 + 1 / max(1, pair["epoch"].max()))
            frames.append(reached.fillna({"value": ceiling}))
        if not frames:
            raise _Untestable(f"'{a}' and '{b}' were not both run at this scale")
        reached = pd.concat(frames, ignore_index=True)
        reached["value"] = -reached["value"]  # fewer is better
        keys = facet_keys + ["level"]
        unit = {"epoch": "epochs", "wall_time": "s", "fwd_bwd": "passes"}.get(x, x)
        verdict = _comparison(_cells(reached, a, b, "value", keys), "most", a, b, unit)
        return Verdict(verdict.verdict, verdict.evidence.replace(f"{a} − {b}", f"{b} − {a} ({x} to reach)"))
    return check


def within_tolerance(mean: float, se: float, tolerance: float) -> str:
    """The similarity rule: *held* when ``mean ± 2 se`` lies inside ``±tolerance``, *not held* when
    it lies outside, *not testable* when it straddles the tolerance (or ``se`` is not a number)."""
    if abs(mean) + 2 * se <= tolerance:
        return HELD
    if abs(mean) - 2 * se > tolerance:
        return NOT_HELD
    return NOT_TESTABLE


def similar(a: str, b: str, *, tolerance: float = 1.0, where: dict[str, Any] | None = None,
            metric: str = "clean_acc", budgets: tuple[int, ...] | None = None) -> Check:
    """``a`` and ``b`` are within ``tolerance`` points of each other on average: *held* when the
    interval ``D ± 2 SE`` lies inside ``±tolerance``, *not held* when it lies outside, and *not
    testable* (the data cannot tell at this precision) when it straddles the tolerance: a
    similarity is shown, not assumed from noise."""
    def check(measured: Measured) -> Verdict:
        points = _select(measured.points, where)
        points = points[points["metric"] == metric]
        if budgets is not None:
            points = points[points["budget"].isin(budgets)]
        keys = list(measured.facets) + ["budget"]
        cells = _cells(points, a, b, "value", keys)
        mean = float(cells["d"].mean())
        se = float(math.sqrt((cells["se"] ** 2).sum()) / len(cells))
        evidence = (f"{a} − {b}: mean {mean:+.2f} points (SE {se:.2f}) over {len(cells)} cells; ±2 SE "
                    f"[{mean - 2 * se:+.2f}, {mean + 2 * se:+.2f}] against the tolerance ±{tolerance:g}")
        reading = within_tolerance(mean, se, tolerance)
        return Verdict(reading, evidence + (": too noisy at this scale to tell" if reading == NOT_TESTABLE else ""))
    return check


def collapses(a: str, *, drop: float = 20.0, where: dict[str, Any] | None = None) -> Check:
    """Most seeds of ``a`` diverge, or fall ``drop`` points below their best accuracy by the end."""
    def check(measured: Measured) -> Verdict:
        curves = _select(measured.curves, where)
        runs = curves[curves["label"] == a]
        if runs.empty:
            raise _Untestable(f"'{a}' was not run at this scale")
        collapsed = 0
        total = 0
        for _, group in runs.groupby("run"):
            total += 1
            acc = group.sort_values("epoch")["test_acc"]
            if (group["status"] == "diverged").any() or acc.max() - acc.iloc[-1] >= drop:
                collapsed += 1
        return Verdict(HELD if collapsed * 2 > total else NOT_HELD,
                       f"{collapsed}/{total} runs of {a} diverged or ended ≥ {drop:g} points below their best")
    return check


def all_of(*checks: Check) -> Check:
    def check(measured: Measured) -> Verdict:
        verdicts = []
        for part in checks:
            try:
                verdicts.append(part(measured))
            except _Untestable as reason:
                verdicts.append(Verdict(NOT_TESTABLE, str(reason)))
        if any(v.verdict == NOT_TESTABLE for v in verdicts):
            verdict = NOT_TESTABLE
        else:
            verdict = HELD if all(v.verdict == HELD for v in verdicts) else NOT_HELD
        return Verdict(verdict, "; ".join(dict.fromkeys(v.evidence for v in verdicts)))
    return check


def trend(metric: str, direction: str, *, by: str = "pipeline") -> Check:
    """``metric`` of the ``sweep`` diagnostics rises (``up``) or falls (``down``) with sparsity, per ``by``."""
    def check(measured: Measured) -> Verdict:
        sweep = measured.extra.get("sweep")
        if sweep is None or sweep.empty:
            raise _Untestable("no sparsity sweep was measured")
        rows = sweep[sweep["metric"] == metric].dropna(subset=["value"])
        if rows.empty:
            raise _Untestable(f"no {metric} was measured")
        parts, held = [], True
        for name, group in rows.groupby(by, sort=False):
            stats = group.groupby("sparsity")["value"].agg(["mean", "std", "count"]).sort_index()
            if len(stats) < 3:
                raise _Untestable(f"{name}: fewer than three sparsities")
            rep_std = group.groupby("sparsity")["std"].mean()  # replicate std when one seed
            err = stats["std"].where(stats["count"] > 1, rep_std).fillna(0.0)
            sign = 1 if direction == "up" else -1
            diff = sign * (stats["mean"].iloc[-1] - stats["mean"].iloc[0])
            bound = 2 * math.hypot(err.iloc[-1], err.iloc[0])
            rho = float(pd.Series(stats.index).corr(pd.Series(stats["mean"].to_numpy()), method="spearman"))
            ok = diff > bound and sign * rho >= 0.8
            held &= ok
            parts.append(f"{name}: {stats['mean'].iloc[0]:.4g} at {stats.index[0]:.0%} → "
                         f"{stats['mean'].iloc[-1]:.4g} at {stats.index[-1]:.0%}, Spearman ρ {rho:+.2f}")
        return Verdict(HELD if held else NOT_HELD, "; ".join(parts))
    return check


def co_move(x: str, y: str, *, label: str, larger: bool = False) -> Check:
    """Per run of ``label``: ``x`` and ``y`` rise and fall together (Pearson r > 0 over epochs with
    a one-sided t-test at 5 %, in most runs); with ``larger``: ``x`` > ``y`` in most epochs instead."""
    def check(measured: Measured) -> Verdict:
        curves = measured.curves
        if x not in curves.columns or y not in curves.columns:
            raise _Untestable(f"no {x}/{y} columns (train with diagnostics='correlation')")
        runs = curves[curves["label"] == label].dropna(subset=[x, y])
        if runs.empty:
            raise _Untestable(f"'{label}' has no {x}/{y} values at this scale")
        good, total, parts = 0, 0, []
        for run, group in runs.groupby("run", sort=False):
            total += 1
            if larger:
                frac = float((group[x] > group[y]).mean())
                good += frac > 0.5
                parts.append(f"{x} > {y} in {frac:.0%} of epochs")
                continue
            n = len(group)
            r = float(group[x].corr(group[y])) if n > 2 else math.nan
            t = r * math.sqrt((n - 2) / max(1e-12, 1 - r * r)) if n > 2 and not math.isnan(r) else math.nan
            critical = {3: 6.31, 4: 2.92, 5: 2.35, 6: 2.13, 7: 2.02, 8: 1.94, 9: 1.89, 10: 1.86}.get(n - 2, 1.70)
            good += bool(t > critical)
            parts.append(f"r = {r:+.2f} over {n} epochs")
        return Verdict(HELD if good * 2 > total else NOT_HELD, f"{label}: " + "; ".join(parts))
    return check


def variance_below_sgd() -> Check:
    """Fig. 2: the variance of the corrected gradient at γĉ is below SGD's (c = 0)."""
    def check(measured: Measured) -> Verdict:
        curve = measured.extra.get("variance_curve")
        if curve is None:
            raise _Untestable("no variance curve was measured")
        c, at, sgd = curve["c_applied"], curve["var_at_c"], curve["var_sgd"]
        return Verdict(HELD if at < sgd else NOT_HELD,
                       f"Var at γĉ = {c:.4g}: {at:.4g} vs SGD (c = 0): {sgd:.4g} (ratio {at / sgd:.4f}); "
                       f"ĉ alone: {curve['var_at_c_hat']:.4g}")
    return check
