"""A reproduction as an object that can be watched and stopped: what ``ArtifactPanel`` drives.

:class:`ReproduceJob` plans the runs of some artifacts at a scale (optionally only some methods and
sparsities), keeps a status table of those runs (cached / archived / missing / interrupted / queued /
training / waiting / completed / diverged, with epoch and ETA), restores the runs the store lacks
from the archive (``archive/<scale>/``, served as they were: nothing is trained for them), trains
through :func:`train_all` (so cached runs are reused and interrupted ones resume), renders each
artifact into ``figures/<id>/`` as soon as its last run finishes, and can be stopped from another
thread: the run in training stops at its next step and resumes on the next :meth:`run`. Listeners
get every :class:`RunEvent`.

With ``launcher="local"`` (worker processes, one per device) or ``"submitit"`` (cluster jobs) the
missing runs are trained by :func:`agent_lab.experiments.launch.launch` first; the job watches the
run store meanwhile (every ``poll_seconds``) and reports what the workers do as the same events, so
the status table and the live curves work alike. A stop cancels the workers or jobs: the runs in
training lose at most their current epoch and resume on the next :meth:`run`.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from .artifacts import ARTIFACTS
from .cost import format_seconds, plan_cost
from .measure import curves_of
from .plan import Run
from .reproduce import (ARCHIVE, ArtifactResult, RunEvent, archived_runs, plan, render_artifact, restore_archived,
                        run_state, train_all)

STATUS_COLUMNS = ["artifacts", "label", "facets", "seed", "state", "epoch", "epochs", "eta_s", "run"]
FINISHED = ("cached", "completed", "diverged")
_STORE_STATES = {"completed": "cached", "diverged": "diverged", "running": "waiting", "hydra": "missing"}


class ReproduceJob:
    """Reproduce ``ids`` at ``scale`` into ``out`` (runs) and ``figures``; see the module docstring."""

    def __init__(self, ids: Iterable[str], scale: str = "smoke", *, seeds: int | None = None, device: str = "auto",
                 labels: Iterable[str] | None = None, sparsities: Iterable[float] | None = None,
                 out: str | Path = "runs", figures: str | Path = "figures", launcher: str = "none", jobs: int = 1,
                 devices: Iterable[str] | None = None, launcher_options: dict[str, Any] | None = None,
                 poll_seconds: float = 1.0, archive: str | Path | None = ARCHIVE) -> None:
        from ..experiments.launch import LAUNCHERS

        if launcher not in ("none", *LAUNCHERS):
            raise ValueError(f"launcher: {launcher!r} is invalid; valid choices: none, {', '.join(LAUNCHERS)}")
        if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
            raise ValueError(f"jobs: {jobs!r} is invalid; expected a whole number >= 1")
        self.launcher, self.jobs, self.poll_seconds = launcher, jobs, float(poll_seconds)
        self.devices = None if devices is None else [str(d) for d in devices]
        self.launcher_options = dict(launcher_options or {})
        self.plan = plan(ids, scale, seeds=seeds, device=device, labels=labels, sparsities=sparsities)
        self.out, self.figures = Path(out), Path(figures)
        self.archive = archive
        self._archived = set(archived_runs(self.plan, archive))  # keys the archive holds
        self.stop_event = threading.Event()
        self.results: dict[str, ArtifactResult] = {}
        self.listeners: list[Callable[[RunEvent], None]] = []
        self.rows: dict[tuple, list[dict[str, Any]]] = {}  # epochs seen of the runs trained now
        self.finished: dict[tuple, Any] = {}  # run key -> RunResult
        self.error: BaseException | None = None
        self.running = False
        users: dict[tuple, list[str]] = {}
        for artifact, runs in self.plan.runs.items():
            for run in runs:
                users.setdefault(run.key, []).append(artifact)
        self._users = users
        estimates = plan_cost(self.plan, self.out)
        self._estimate = dict(zip(estimates["run"], estimates["seconds"]))
        self._speed = 1.0  # measured / estimated seconds of the runs trained now
        self._started: dict[tuple, float] = {}
        self._at = {key: position for position, key in enumerate(self.plan.distinct)}  # status row of a run
        self.status = pd.DataFrame([self._row(key, run) for key, run in self.plan.distinct.items()],
                                   columns=STATUS_COLUMNS)

    # -- the status table -------------------------------------------------------------------------
    def _row(self, key: tuple, run: Run) -> dict[str, Any]:
        state = run_state(run, self.out)
        if state == "missing" and key in self._archived:  # restored (served, not trained) when the job runs
            state = "archived"
        name = run.config.run_name()
        done, epochs = self._epochs_done(run, state), run.config.epochs
        left = 0.0 if state in ("completed", "diverged", "archived") else \
            float(self._estimate.get(name, float("nan"))) * self._speed * (epochs - done) / max(epochs, 1)
        return {"artifacts": ",".join(dict.fromkeys(self._users[key])), "label": run.arm.label,
                "facets": ", ".join(f"{k}={v}" for k, v in run.arm.facets), "seed": run.seed,
                "state": _STORE_STATES.get(state, state), "epoch": done, "epochs": epochs, "eta_s": left,
                "run": name}

    def _epochs_done(self, run: Run, state: str) -> int:
        """Epochs in the run's history (one another process trains included; 0 when unreadable)."""
        if state in ("missing", "hydra", "damaged", "archived"):
            return 0
        from ..runs import load_run, run_dir_for
        try:
            return len(load_run(run_dir_for(run.config, self.out), verify="none").history)
        except Exception:  # being written by its trainer, or not yet begun: nothing to count
            return 0

    @property
    def eta_seconds(self) -> float:
        """Seconds left: the estimate of each run still to train, scaled by how fast the runs
        trained so far went against their estimate; the run in training by its own pace."""
        left = self.status.loc[~self.status["state"].isin(FINISHED), "eta_s"]
        return float(left.fillna(0).sum())

    def summary(self) -> str:
        done = int(self.status["state"].isin(FINISHED).sum())
        text = f"runs {done}/{len(self.status)}"
        training = self.status[self.status["state"] == "training"]
        if len(training):
            row = training.iloc[0]
            text += f" · {row['label']} seed {row['seed']}: epoch {row['epoch']}/{row['epochs']}"
        if done < len(self.status):
            eta = self.eta_seconds
            text += f" · ETA ~{format_seconds(eta)}"
        return text

    # -- running ----------------------------------------------------------------------------------
    def run(self) -> dict[str, ArtifactResult]:
        """Train what is missing, render every artifact; returns the rendered artifacts. A
        :meth:`stop` (or an interrupted run) ends it early: ``KeyboardInterrupt`` is raised after the
        status table is updated, and the next :meth:`run` resumes."""
        self.stop_event.clear()
        self.error, self.running = None, True
        for position in self.status.index:
            if self.status.at[position, "state"] not in FINISHED:
                self.status.at[position, "state"] = "queued"
        try:
            restore_archived(self.plan, self.out, self.archive)
            if self.launcher != "none":
                self._train_launched()
            train_all(self.plan, self.out, progress=False, stop=self.stop_event, on_event=self._on_event)
            for artifact in self.plan.runs:
                self._render_if_ready(artifact)
            return self.results
        except BaseException as error:
            self.error = error
            raise
        finally:
            self.running = False
            for key, run in self.plan.distinct.items():
                if self.status.at[self._at[key], "state"] in ("queued", "training", "waiting"):
                    self.status.loc[self._at[key]] = self._row(key, run)

    def _train_launched(self) -> None:
        """Hand the runs to train to the launcher, report what its workers do until they end."""
        from ..experiments.launch import launch

        todo = {key: run for key, run in self.plan.distinct.items()
                if run.arm.driver == "train" and run_state(run, self.out) not in ("completed", "diverged")}
        if not todo:
            return
        options = dict(self.launcher_options)
        if self.launcher == "local":
            options.update(jobs=self.jobs, devices=self.devices)
        launched = launch([run.config for run in todo.values()], self.out, self.launcher, wait=False, **options)
        reported = {key: 0 for key in todo}  # history rows already reported per run
        stamps: dict[tuple, int] = {}  # meta.json's mtime when a run was last read
        while True:
            ended = launched.done()
            self._watch(todo, reported, stamps)
            if ended:
                break
            if self.stop_event.wait(self.poll_seconds):
                launched.cancel()
                self._watch(todo, reported, stamps)
                left = sum(key not in self.finished for key in todo)
                raise KeyboardInterrupt(f"{left} of {len(todo)} launched run(s) are not finished; "
                                        "reproduce again to resume them")
        launched.wait()  # a failed worker or job raises here

    def _watch(self, todo: dict[tuple, Run], reported: dict[tuple, int], stamps: dict[tuple, int]) -> None:
        """Turn what the run store shows of the launched runs into events (a started run is read
        again only once its trainer has saved since)."""
        from ..runs import load_run, run_dir_for

        for key, run in todo.items():
            if key in self.finished:
                continue
            meta = run_dir_for(run.config, self.out) / "meta.json"
            stamp = meta.stat().st_mtime_ns if meta.exists() else None
            if key in self._started and stamp is not None and stamps.get(key) == stamp:
                continue
            state = run_state(run, self.out)
            if state in ("missing", "queued", "damaged"):
                continue
            try:
                result = load_run(run_dir_for(run.config, self.out), verify="none")
            except Exception:  # being written by its trainer: look again at the next poll
                continue
            rows = result.history.to_dict("records")
            if key not in self._started and (state == "running" or rows):
                self._on_event(RunEvent("start", run))
            for row in rows[reported[key]:]:
                self._on_event(RunEvent("epoch", run, row=row))
            reported[key] = len(rows)
            if stamp is not None:
                stamps[key] = stamp
            if state in ("completed", "diverged"):
                self._on_event(RunEvent("done", run, result=result))

    def start(self) -> threading.Thread:
        """:meth:`run` in a background thread (returned); a stop or an error ends up in ``self.error``."""
        def work() -> None:
            try:
                self.run()
            except BaseException:  # kept in self.error by run(); a thread has nowhere to raise to
                pass

        thread = threading.Thread(target=work, name="ReproduceJob", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask the job to stop: the run in training ends at its next step (resumable), nothing more starts."""
        self.stop_event.set()

    def _on_event(self, event: RunEvent) -> None:
        key, now = event.run.key, time.perf_counter()
        at = self._at[key]
        if event.kind == "cached" and key in self.finished:  # a launched run, already reported as done
            return
        if event.kind == "start":
            self.status.at[at, "state"] = "training"
            self._started[key] = now
            self.rows[key] = []
        elif event.kind == "epoch":
            self.rows.setdefault(key, []).append(event.row)
            epoch, epochs = int(event.row["epoch"]), int(self.status.at[at, "epochs"])
            self.status.at[at, "epoch"] = epoch
            per_epoch = float(event.row["wall_time"]) / max(epoch, 1)
            self.status.at[at, "eta_s"] = per_epoch * (epochs - epoch)
        elif event.kind == "waiting":
            self.status.at[at, "state"] = "waiting"
        else:  # cached or done
            result = event.result
            self.finished[key] = result
            self.status.at[at, "state"] = "cached" if event.kind == "cached" else result.status
            self.status.at[at, "epoch"] = len(result.history)
            self.status.at[at, "eta_s"] = 0.0
            if event.kind == "done" and key in self._started and result.status == "completed":
                estimate = self._estimate.get(event.run.config.run_name())
                if estimate and estimate > 0:
                    self._speed = (now - self._started[key]) / estimate
                    queued = self.status["state"] == "queued"
                    names = self.status.loc[queued, "run"]
                    self.status.loc[queued, "eta_s"] = [self._estimate.get(n, float("nan")) * self._speed
                                                        for n in names]
            if result.status != "interrupted":
                for artifact in self._users[key]:
                    self._render_if_ready(artifact)
        for listener in self.listeners:
            listener(event)

    def _render_if_ready(self, artifact: str) -> None:
        runs = self.plan.runs[artifact]
        if artifact in self.results or not all(run.key in self.finished for run in runs):
            return
        results = {run.key: self.finished[run.key] for run in runs}
        self.results[artifact] = render_artifact(ARTIFACTS[artifact], runs, results, self.plan.scale, self.figures)

    # -- what is drawn while it trains ------------------------------------------------------------
    def live_curves(self) -> pd.DataFrame:
        """Test accuracy (%) per epoch of every run finished or in training now: one row per (run, epoch)."""
        pairs = [(self.plan.distinct[key], result) for key, result in self.finished.items()]
        frames = [curves_of(pairs, ())] if pairs else []
        for key, rows in self.rows.items():
            if key in self.finished or not rows:
                continue
            run = self.plan.distinct[key]
            frame = pd.DataFrame(rows)
            frames.append(pd.DataFrame({"label": run.arm.label, "seed": run.seed, "epoch": frame["epoch"],
                                        "test_acc": 100.0 * frame["test_acc"], "run": run.config.run_name(),
                                        "status": "training"}))
        if not frames:
            return pd.DataFrame(columns=["label", "seed", "epoch", "test_acc", "run", "status"])
        return pd.concat(frames, ignore_index=True)[["label", "seed", "epoch", "test_acc", "run", "status"]]

    def live_figure(self):
        """The live curves as a matplotlib figure (one line per run, coloured by method)."""
        import matplotlib.pyplot as plt
        import seaborn as sns

        curves = self.live_curves().dropna(subset=["test_acc"])
        fig, ax = plt.subplots(figsize=(6.4, 3.4))
        if len(curves):
            sns.lineplot(data=curves, x="epoch", y="test_acc", hue="label", units="run", estimator=None,
                         marker="o", ax=ax)
        ax.set(xlabel="epoch", ylabel="test accuracy (%)",
               title=f"{', '.join(self.plan.runs)} at the {self.plan.scale.name} scale: runs so far")
        fig.tight_layout()
        return fig

