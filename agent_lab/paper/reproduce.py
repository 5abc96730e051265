"""``reproduce``: train what an artifact is missing, measure, render beside the paper, trace it.

:func:`plan` lists the runs of one or more artifacts at a scale (each distinct config once, so
artifacts share runs); :func:`reproduce` trains the missing ones (cached runs are served from the
store, interrupted ones resume), measures, renders into ``figures/<id>/`` (PNG and PDF; tables
also CSV and Markdown; file names end in the scale) with the claims' verdicts, and writes
``figures/<id>/SOURCES.json`` (one entry per scale: run folders, config hashes, library version,
date, device, seeds), so every figure traces back to its runs.

Several processes may reproduce at once into the same store: a run another process is training
is skipped at first and waited for at the end.
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from .._version import __version__
from ..experiments.archive import archive_run, archived_copy, restore_run
from ..reporting import label_table, save_figure, save_table
from ..runs import (FINAL_STATUSES, RunLockedError, is_running, load_run, queued_entry, read_json, run_dir_for,
                    write_json)
from .artifacts import ARTIFACTS
from .claims import Verdict
from .measure import measured as measure
from .plan import Run, runs_of
from .scales import Scale, get_scale
from .spec import ArtifactSpec

SOURCES_FILE = "SOURCES.json"
ARCHIVE = "archive"  # the default archive of finished runs: archive/<scale>/<run name>/ (no checkpoints)


def artifact_folder(figures: str | Path, artifact: str, scale: str) -> Path:
    """``figures/<id>/``; at the smoke scale ``figures/smoke/<id>/`` (not versioned: smoke numbers are
    not results, and they must not mix with the committed ones)."""
    return Path(figures) / ("smoke" if scale == "smoke" else "") / artifact


def check_ids(ids: Iterable[str]) -> list[str]:
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise ValueError("artifacts: none given; choose from " + ", ".join(ARTIFACTS) + " (or 'all')")
    if ids == ["all"]:
        return list(ARTIFACTS)
    bad = [i for i in ids if i not in ARTIFACTS]
    if bad:
        raise ValueError(f"artifacts: {', '.join(bad)} invalid; valid choices: {', '.join(ARTIFACTS)} (or 'all')")
    return ids


def _check_seeds(seeds: Any) -> int | None:
    if seeds is None:
        return None
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds: {seeds!r} is invalid; expected an integer >= 1")
    return seeds


@dataclass
class Plan:
    scale: Scale
    runs: dict[str, list[Run]]  # artifact id -> its runs

    @property
    def distinct(self) -> dict[tuple, Run]:
        out: dict[tuple, Run] = {}
        for runs in self.runs.values():
            for run in runs:
                out.setdefault(run.key, run)
        return out


def plan(ids: Iterable[str], scale: str | Scale = "smoke", *, seeds: int | None = None,
         device: str = "auto", labels: Iterable[str] | None = None,
         sparsities: Iterable[float] | None = None) -> Plan:
    """The runs of each artifact at ``scale`` (``seeds``: the scale's or the artifact's own when None).

    ``labels`` / ``sparsities`` keep only the arms with those labels (e.g. ``{"SGD", "AGENT"}``) /
    sparsity facets (arms without a sparsity facet are kept); a claim whose arms are left out is
    then not testable."""
    ids = check_ids(ids)
    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    seeds = _check_seeds(seeds)
    labels = None if labels is None else set(labels)
    sparsities = None if sparsities is None else {float(s) for s in sparsities}
    if labels is not None or sparsities is not None:
        valid_labels, valid_sparsities = arm_choices(ids, scale)
        bad = sorted(labels - set(valid_labels)) if labels is not None else []
        if bad:
            raise ValueError(f"methods: {', '.join(bad)} invalid for {', '.join(ids)} at the {scale.name} scale; "
                             f"valid choices: {', '.join(valid_labels)}")
        bad = sorted(sparsities - set(valid_sparsities)) if sparsities is not None else []
        if bad:
            raise ValueError(f"sparsities: {', '.join(f'{b:g}' for b in bad)} invalid for {', '.join(ids)} at the "
                             f"{scale.name} scale; valid choices: {', '.join(f'{v:g}' for v in valid_sparsities)}")
    runs = {}
    for artifact in ids:
        spec = ARTIFACTS[artifact]
        arms = tuple(arm for arm in spec.arms_at(scale)
                     if (labels is None or arm.label in labels)
                     and (sparsities is None or "sparsity" not in arm.facet or float(arm.facet["sparsity"]) in sparsities))
        runs[artifact] = runs_of(arms, scale, seeds if seeds is not None else spec.seeds(scale), device)
    return Plan(scale, runs)


def arm_choices(ids: Iterable[str], scale: str | Scale = "smoke") -> tuple[list[str], list[float]]:
    """The arm labels and the sparsities the artifacts ``ids`` have at ``scale`` (what ``plan``'s
    ``labels`` and ``sparsities`` choose from)."""
    scale = scale if isinstance(scale, Scale) else get_scale(scale)
    labels: dict[str, None] = {}
    sparsities: set[float] = set()
    for artifact in check_ids(ids):
        for arm in ARTIFACTS[artifact].arms_at(scale):
            labels.setdefault(arm.label)
            if "sparsity" in arm.facet:
                sparsities.add(float(arm.facet["sparsity"]))
    return list(labels), sorted(sparsities)


def run_state(run: Run, out: str | Path) -> str:
    """``completed``/``diverged`` (cached), ``running``, ``queued`` (handed to a launcher's worker or
    cluster job that has not started it), ``interrupted`` (resumable), ``missing`` or ``damaged``."""
    if run.arm.driver != "train":
        return "hydra"
    run_dir = run_dir_for(run.config, out)
    if is_running(run_dir):
        return "running"
    state = "missing"
    if (run_dir / "meta.json").exists():
        try:
            state = load_run(run_dir, verify="none").status
        except Exception:  # unreadable: train() repairs or reports it
            state = "damaged"
    if state not in FINAL_STATUSES and queued_entry(run_dir):
        return "queued"
    return state


def archive_folder(archive: str | Path, scale: str) -> Path:
    """``archive/<scale>/``: the slim copies of a scale's finished runs (see :mod:`agent_lab.experiments.archive`)."""
    return Path(archive).expanduser() / scale


def archived_runs(the_plan: Plan, archive: str | Path | None) -> dict[tuple, Path]:
    """The plan's runs that ``archive/<scale>/`` holds, by run key."""
    if archive is None:
        return {}
    folder = archive_folder(archive, the_plan.scale.name)
    found = {key: archived_copy(run.config, folder) for key, run in the_plan.distinct.items()
             if run.arm.driver == "train"}
    return {key: path for key, path in found.items() if path is not None}


def plan_states(the_plan: Plan, out: str | Path = "runs", archive: str | Path | None = None) -> dict[tuple, str]:
    """:func:`run_state` of every distinct run, ``archived`` where the store lacks a run the archive holds."""
    states = {key: run_state(run, out) for key, run in the_plan.distinct.items()}
    for key in archived_runs(the_plan, archive):
        if states[key] == "missing":
            states[key] = "archived"
    return states


def restore_archived(the_plan: Plan, out: str | Path = "runs", archive: str | Path | None = ARCHIVE) -> list[str]:
    """Copy into the run store ``out`` every run of the plan that the store lacks and the archive holds
    (the store then serves them: nothing is trained for them); returns their run names. A run the
    store has in any state (interrupted, damaged, being trained) is left to the store."""
    restored = []
    for key, source in archived_runs(the_plan, archive).items():
        if run_dir_for(the_plan.distinct[key].config, out).exists():
            continue
        restored.append(restore_run(source, out).run_dir.name)
    return restored


def archive_plan(the_plan: Plan, out: str | Path = "runs", archive: str | Path = ARCHIVE) -> pd.DataFrame:
    """Write the slim copy of every finished run of the plan into ``archive/<scale>/``; one row per
    distinct run with what was done (``archived``, or why not: ``missing``, ``interrupted``, ...)."""
    folder = archive_folder(archive, the_plan.scale.name)
    rows = []
    for run in the_plan.distinct.values():
        state = run_state(run, out)
        name = run.config.run_name()
        if state in FINAL_STATUSES:
            archive_run(run_dir_for(run.config, out), folder)
            state = "archived"
        rows.append({"run": name, "label": run.arm.label, "seed": run.seed, "result": state})
    return pd.DataFrame(rows, columns=["run", "label", "seed", "result"])


def _train(run: Run, out: str | Path, progress: bool, lock_timeout: float | None, stop: Any = None,
           on_epoch: Callable[[dict[str, Any]], None] | None = None):
    from ..train import train

    if run.arm.driver == "hydra":  # its phases run to the end: a Stop takes effect at the next run
        from ..experiments.hydra import run_hydra
        return run_hydra(run.config, out, sparsity=run.arm.facet["sparsity"], progress=progress)
    return train(run.config, out=out, progress=progress, lock_timeout=lock_timeout, stop=stop, on_epoch=on_epoch)


EVENT_KINDS = ("cached", "start", "epoch", "done", "waiting")


@dataclass(frozen=True)
class RunEvent:
    """What :func:`train_all` reports as it goes: a run served from the store (``cached``), started
    (``start``), an epoch saved (``epoch``, with its history ``row``), finished (``done``, with the
    ``result``: completed, diverged or interrupted) or locked by another process (``waiting``)."""

    kind: str
    run: Run
    row: dict[str, Any] | None = None
    result: Any = None


def train_all(the_plan: Plan, out: str | Path = "runs", *, progress: bool = True, stop: Any = None,
              on_event: Callable[[RunEvent], None] | None = None) -> dict[tuple, Any]:
    """Train (or load) every distinct run; returns its result by run key.

    ``stop`` (a ``threading.Event``) ends the current run at its next step (resumable) and trains
    nothing more; ``on_event`` receives a :class:`RunEvent` at each step of the way. A stopped or
    interrupted call raises ``KeyboardInterrupt`` naming what is left: reproduce again to resume."""
    distinct = the_plan.distinct
    results: dict[tuple, Any] = {}
    deferred = []
    bar = tqdm(total=len(distinct), desc=f"runs ({the_plan.scale.name})", unit="run", disable=not progress)

    def emit(kind: str, run: Run, **fields: Any) -> None:
        if on_event is not None:
            on_event(RunEvent(kind, run, **fields))

    def train_one(key: tuple, run: Run, lock_timeout: float | None) -> None:
        cached = run_state(run, out) in ("completed", "diverged")
        if not cached:
            emit("start", run)
        result = _train(run, out, progress, lock_timeout, stop,
                        on_epoch=lambda row: emit("epoch", run, row=row))
        results[key] = result
        emit("cached" if cached else "done", run, result=result)
        bar.update(1)

    def stopped() -> bool:  # a Stop, or a run interrupted by Ctrl-C (train() catches it): start nothing more
        return (stop is not None and stop.is_set()) or any(r.status == "interrupted" for r in results.values())

    for key, run in distinct.items():
        if stopped():
            break
        bar.set_postfix_str(run.config.run_name()[:60])
        try:
            train_one(key, run, lock_timeout=0)
        except RunLockedError:  # another process trains it: come back at the end
            emit("waiting", run)
            deferred.append((key, run))
    for key, run in deferred:
        bar.set_postfix_str(f"waiting for {run.config.run_name()[:50]}")
        while not stopped():
            try:
                train_one(key, run, lock_timeout=None if stop is None else 2.0)
                break
            except RunLockedError:
                continue
    bar.close()
    interrupted = [r.run_dir for r in results.values() if r.status == "interrupted"]
    if interrupted or len(results) < len(distinct):
        example = interrupted[0] if interrupted else "the runs not started"
        raise KeyboardInterrupt(f"{len(distinct) - len(results) + len(interrupted)} of {len(distinct)} run(s) "
                                f"are not finished (e.g. {example}); reproduce again to resume them")
    return results


@dataclass
class ArtifactResult:
    spec: ArtifactSpec
    scale: str
    verdicts: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)


def verdicts_of(spec: ArtifactSpec, data) -> pd.DataFrame:
    rows = []
    for claim in spec.claims:
        verdict: Verdict = claim.decide(data)
        rows.append({"artifact": spec.id, "claim": claim.text, "verdict": verdict.verdict,
                     "evidence": verdict.evidence})
    return pd.DataFrame(rows, columns=["artifact", "claim", "verdict", "evidence"])


def render_artifact(spec: ArtifactSpec, runs: Sequence[Run], results: dict[tuple, Any], scale: Scale,
                    figures: str | Path = "figures") -> ArtifactResult:
    """Measure ``spec``'s finished runs, render them into ``figures/<id>/`` and decide its claims."""
    pairs = [(run, results[run.key]) for run in runs]
    data = measure(pairs, facet_names=spec.facets, budgets=spec.budgets, paper_epochs=spec.paper_epochs,
                   scale=scale, extras=spec.measures, sweep_what=spec.sweep_what)
    entries = [{"label": run.arm.label, "facets": {k: v for k, v in run.arm.facets}, "seed": run.seed,
                "driver": run.arm.driver, "config_hash": run.config.config_hash(),
                "run_dir": str(Path(result.run_dir)), "status": result.status} for run, result in pairs]
    devices = sorted({str(r.meta.get("device", "")) for _, r in pairs if hasattr(r, "meta")} - {""})
    return _publish(spec, data, scale, figures, {"runs": entries, "devices": devices,
                                                  "seeds": sorted({run.seed for run in runs})})


def _publish(spec: ArtifactSpec, data, scale: Scale, figures: str | Path, provenance: dict[str, Any],
             rerendered: bool = False) -> ArtifactResult:
    """Render ``data``, decide the claims, save everything and record it in SOURCES.json."""
    import matplotlib.pyplot as plt

    from .render import RENDERERS

    rendered = RENDERERS[spec.renderer](spec, data, scale.name)
    verdicts = verdicts_of(spec, data)
    folder = artifact_folder(figures, spec.id, scale.name)
    paths: list[Path] = []
    smoke = "smoke" if scale.name == "smoke" else None
    for name, fig in rendered.figures.items():
        paths += save_figure(fig, folder / f"{name}_{scale.name}", smoke)
        plt.close(fig)
    for name, table in {**rendered.tables, "verdicts": verdicts}.items():
        paths += save_table(table, folder / f"{name}_{scale.name}", smoke)
    if not data.curves.empty and not rerendered:  # what --rerender redraws from (CSV only: it is data)
        path = folder / f"histories_{scale.name}.csv"
        label_table(data.curves, smoke).to_csv(path, index=False)
        paths.append(path)
    if data.extra and not rerendered:
        path = folder / f"measurements_{scale.name}.json"
        extra = {name: value.to_dict(orient="records") if isinstance(value, pd.DataFrame) else value
                 for name, value in data.extra.items()}
        path.write_text(json.dumps(extra, indent=1, default=float))
        paths.append(path)
    path = folder / SOURCES_FILE
    existing = read_json(path) if path.exists() else {}
    entry = dict(existing.get(scale.name, {})) if rerendered else {}
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    entry.update({
        "artifact": spec.id, "title": spec.title, "scale": scale.name, "scale_description": scale.description,
        "scale_note": spec.note(scale.name), "library_version": __version__, "host": platform.node(),
        **({"rerendered": now} if rerendered else {"date": now, **provenance}),
        "files": sorted({p.name for p in paths} | (set(entry.get("files", ())) if rerendered else set())),
        "verdicts": verdicts.drop(columns=["artifact"]).to_dict(orient="records"),
    })
    existing[scale.name] = entry
    write_json(path, existing)
    return ArtifactResult(spec, scale.name, verdicts, rendered.tables, paths + [path])


def rerender(ids: Iterable[str], scale: str = "cpu", *, figures: str | Path = "figures") -> dict[str, ArtifactResult]:
    """Redraw artifacts from what ``reproduce`` saved beside them (``histories_<scale>.csv``,
    ``measurements_<scale>.json``, ``SOURCES.json``): no run store, nothing trained."""
    from .claims import Measured
    from .measure import points_of

    the_scale = get_scale(scale)
    out = {}
    for artifact in check_ids(ids):
        spec = ARTIFACTS[artifact]
        folder = artifact_folder(figures, artifact, scale)
        sources = folder / SOURCES_FILE
        if not sources.exists() or scale not in read_json(sources):
            raise FileNotFoundError(f"{sources}: no {scale}-scale entry; run agent-lab reproduce {artifact} "
                                    f"--scale {scale} first")
        histories = folder / f"histories_{scale}.csv"
        curves = pd.read_csv(histories).drop(columns=["scale"], errors="ignore") if histories.exists() else \
            pd.DataFrame(columns=["label", *spec.facets, "seed", "epoch", "test_acc", "run", "status"])
        measurements = folder / f"measurements_{scale}.json"
        extra = json.loads(measurements.read_text()) if measurements.exists() else {}
        extra = {name: pd.DataFrame(value) if isinstance(value, list) else value for name, value in extra.items()}
        data = Measured(curves, points_of(curves, spec.budgets, spec.paper_epochs, the_scale, spec.facets),
                        tuple(spec.facets), extra)
        out[artifact] = _publish(spec, data, the_scale, figures, {}, rerendered=True)
    return out


def reproduce(ids: Iterable[str], scale: str = "smoke", *, seeds: int | None = None, device: str = "auto",
              out: str | Path = "runs", figures: str | Path = "figures", progress: bool = True,
              labels: Iterable[str] | None = None, sparsities: Iterable[float] | None = None,
              archive: str | Path | None = ARCHIVE) -> dict[str, ArtifactResult]:
    """Train what is missing, then measure and render every artifact of ``ids`` at ``scale``
    (``labels`` / ``sparsities``: only those arms, as in :func:`plan`). Runs the store lacks are
    first restored from ``archive/<scale>/`` where it holds them (``archive=None``: never)."""
    the_plan = plan(ids, scale, seeds=seeds, device=device, labels=labels, sparsities=sparsities)
    restore_archived(the_plan, out, archive)
    results = train_all(the_plan, out, progress=progress)
    return {artifact: render_artifact(ARTIFACTS[artifact], runs, results, the_plan.scale, figures)
            for artifact, runs in the_plan.runs.items()}


def _config_text(config) -> str:
    from ..config import RunConfig
    default = RunConfig().to_dict()
    changed = {k: v for k, v in config.to_dict().items() if default.get(k) != v and k != "device"}
    return json.dumps(changed, ensure_ascii=False)


def describe_plan(the_plan: Plan, out: str | Path = "runs", archive: str | Path | None = None) -> pd.DataFrame:
    """One row per distinct run: the artifacts using it, label, seed, state, run name and config
    (state ``archived``: missing in the store, held by ``archive/<scale>/``, so restored, not trained)."""
    states = plan_states(the_plan, out, archive)
    users: dict[tuple, list[str]] = {}
    for artifact, runs in the_plan.runs.items():
        for run in runs:
            users.setdefault(run.key, []).append(artifact)
    rows = []
    for key, run in the_plan.distinct.items():
        rows.append({"artifacts": ",".join(dict.fromkeys(users[key])), "label": run.arm.label,
                     "facets": ", ".join(f"{k}={v}" for k, v in run.arm.facets), "seed": run.seed,
                     "driver": run.arm.driver, "state": states[key], "run": run.config.run_name(),
                     "config": _config_text(run.config)})
    return pd.DataFrame(rows, columns=["artifacts", "label", "facets", "seed", "driver", "state", "run", "config"])
