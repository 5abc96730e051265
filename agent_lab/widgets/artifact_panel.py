"""ArtifactPanel: regenerate tables and figures of the paper from a notebook, and watch it happen."""
from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Sequence

import ipywidgets as widgets
import pandas as pd
from IPython.display import display

from ..paper import ARTIFACTS
from ..paper.job import FINISHED, ReproduceJob
from ..paper.reproduce import RunEvent, arm_choices
from ..paper.cost import format_seconds
from ..reporting import SCALES, figure_png, notebook_scale

STATE_COLORS = {"cached": "#2e7d32", "completed": "#2e7d32", "archived": "#558b2f", "training": "#1565c0",
                "queued": "#6d6d6d", "missing": "#6d6d6d", "interrupted": "#ef6c00", "waiting": "#6a1b9a",
                "diverged": "#c62828", "damaged": "#c62828"}
REDRAW_SECONDS = 1.0  # the live figure is redrawn at most this often


class ArtifactPanel:
    """Pick artifact(s), scale, seeds, device and (where the artifact has several) methods and
    sparsities; **Run** trains what is missing in a background thread (the kernel stays free) and
    **Stop** ends the run in training at its next step (it resumes on the next Run). "train with"
    hands the missing runs to local worker processes (``workers`` of them, one per device) or to
    submitit jobs (``launcher_options``: ``cluster``, ``partition``, ``time_minutes``,
    ``gpus_per_job``, ...), and the panel watches the run store while they train.

    Below the controls: a progress bar with the ETA, the status of every run (cached / archived /
    missing / interrupted / queued / training / waiting / completed / diverged, epoch, ETA), the
    curves of the runs so far (redrawn as epochs land), then each artifact's figure in the paper's
    layout, its table beside the paper's numbers and the claims' verdicts, as soon as its last run
    finishes.
    Runs the store lacks but ``archive/<scale>/`` holds (the slim copies of the runs behind the
    committed figures) show as ``archived`` and are restored, not trained, when Run is pressed.
    Outputs go to ``figures/<id>/`` as with ``agent-lab reproduce``. Everything it does is
    :class:`agent_lab.paper.job.ReproduceJob`; ``panel.job`` is the current one.
    """

    def __init__(self, artifacts: str | Sequence[str] = ("fig7",), scale: str | None = None, *,
                 seeds: int | None = None, device: str = "auto", out: str | Path = "runs",
                 figures: str | Path = "figures", launcher: str = "none", jobs: int = 1,
                 launcher_options: dict | None = None, archive: str | Path | None = "archive") -> None:
        chosen = [artifacts] if isinstance(artifacts, str) else list(artifacts)
        unknown = [a for a in chosen if a not in ARTIFACTS]
        if unknown:
            raise ValueError(f"artifacts: {', '.join(unknown)} invalid; valid choices: {', '.join(ARTIFACTS)}")
        self.out, self.figures, self.archive = out, figures, archive
        self.launcher_options = dict(launcher_options or {})
        self.job: ReproduceJob | None = None
        self.thread: threading.Thread | None = None
        self._last_draw = 0.0
        self._shown: set[str] = set()
        self._updating = False  # True while the panel itself sets the method/sparsity choices
        self.artifacts = widgets.SelectMultiple(
            options=[(f"{spec.id}: {spec.title}", spec.id) for spec in ARTIFACTS.values()], value=tuple(chosen),
            rows=8, description="artifacts", layout=widgets.Layout(width="60%"))
        self.scale = widgets.ToggleButtons(options=list(SCALES), value=scale or notebook_scale(), description="scale")
        self.seeds = widgets.BoundedIntText(value=seeds or 0, min=0, max=20, description="seeds",
                                            tooltip="0: the scale's number of seeds")
        self.device = widgets.Dropdown(options=["auto", "cpu", "cuda"], value=device, description="device")
        self.launcher = widgets.Dropdown(options=[("in this kernel", "none"), ("local workers", "local"),
                                                  ("submitit jobs", "submitit")], value=launcher,
                                         description="train with",
                                         tooltip="local: worker processes (one per device); submitit: cluster jobs")
        self.jobs = widgets.BoundedIntText(value=jobs, min=1, max=64, description="workers",
                                           tooltip="local workers: how many processes")
        self.methods = widgets.SelectMultiple(description="methods", rows=5)
        self.sparsities = widgets.SelectMultiple(description="sparsity", rows=5)
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = widgets.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.progress = widgets.IntProgress(min=0, max=1, value=0, layout=widgets.Layout(width="40%"))
        self.progress_text = widgets.Label()
        self.message = widgets.HTML()
        self.status_table = widgets.HTML()
        self.live = widgets.Image(format="png")
        self.results = widgets.VBox()
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        for control in (self.artifacts, self.scale, self.seeds, self.device, self.methods, self.sparsities,
                        self.launcher, self.jobs):
            control.observe(lambda _: self._selection_changed(), "value")
        self._choices_changed()
        self.widget = widgets.VBox([
            widgets.HBox([self.artifacts, widgets.VBox([self.scale, self.seeds, self.device, self.launcher,
                                                        self.jobs])]),
            widgets.HBox([self.methods, self.sparsities]),
            widgets.HBox([self.run_button, self.stop_button, self.progress, self.progress_text]),
            self.message, self.status_table, self.live, self.results,
        ])

    # -- the selection ----------------------------------------------------------------------------
    def _choices_changed(self) -> None:
        """Offer the methods and sparsities of the chosen artifacts (all selected) and a fresh job."""
        labels, sparsities = arm_choices(self.artifacts.value, self.scale.value) if self.artifacts.value else ([], [])
        self._updating = True
        try:
            self.methods.options, self.methods.value = labels, tuple(labels)
            self.sparsities.options = [(f"{s:g}", s) for s in sparsities]
            self.sparsities.value = tuple(sparsities)
        finally:
            self._updating = False
        self._new_job()

    def _selection_changed(self) -> None:
        if self._updating or self.busy:
            return
        if not self.artifacts.value:
            self._new_job()
            return
        labels, sparsities = arm_choices(self.artifacts.value, self.scale.value)
        if list(self.methods.options) != labels or [v for _, v in self.sparsities.options] != sparsities:
            self._choices_changed()
        else:
            self._new_job()

    def _new_job(self) -> None:
        if not self.artifacts.value:
            self.job = None
            self.status_table.value = "<i>choose at least one artifact</i>"
            return
        self.job = ReproduceJob(self.artifacts.value, self.scale.value, seeds=self.seeds.value or None,
                                device=self.device.value, labels=self.methods.value,
                                sparsities=self.sparsities.value if self.sparsities.options else None,
                                out=self.out, figures=self.figures, launcher=self.launcher.value,
                                jobs=self.jobs.value, launcher_options=self.launcher_options,
                                archive=self.archive)
        self.job.listeners.append(self._on_event)
        self._shown = set()
        self.results.children = ()
        self.message.value = ""
        self._refresh()

    # -- running ----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def run(self, wait: bool = False) -> None:
        """Start the job in a background thread (``wait=True``: return when it ends)."""
        if self.busy or self.job is None:
            return
        self.run_button.disabled, self.stop_button.disabled = True, False
        self.message.value = ""
        self.thread = threading.Thread(target=self._work, name="ArtifactPanel", daemon=True)
        self.thread.start()
        if wait:
            self.wait()

    def stop(self) -> None:
        """Stop the job: the run in training ends at its next step, resumable by the next Run."""
        if self.job is not None:
            self.job.stop()
            self.message.value = "<b>stopping</b> at the next training step…"

    def wait(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def _work(self) -> None:
        job = self.job
        try:
            job.run()
            self.message.value = f"<b>done</b>: {len(job.results)} artifact(s) in {html.escape(str(self.figures))}/"
        except KeyboardInterrupt as stopped:
            self.message.value = f"<b>stopped</b>: {html.escape(str(stopped))}. Press Run to resume."
        except Exception as error:  # shown in the panel: a background thread has nowhere else to report
            self.message.value = f"<b style='color:#c62828'>error</b>: {html.escape(type(error).__name__)}: " \
                                 f"{html.escape(str(error))}"
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True
            self._draw_live(force=True)
            self._refresh()

    def _on_event(self, event: RunEvent) -> None:
        self._refresh()
        if event.kind in ("epoch", "done"):
            self._draw_live(force=event.kind == "done")

    # -- what is shown ----------------------------------------------------------------------------
    def _refresh(self) -> None:
        job = self.job
        if job is None:
            return
        status = job.status
        self.progress.max = max(1, len(status))
        self.progress.value = int(status["state"].isin(FINISHED).sum())
        self.progress_text.value = job.summary()
        self.status_table.value = status_html(status)
        for artifact, result in list(job.results.items()):
            if artifact not in self._shown:
                self._shown.add(artifact)
                self.results.children = (*self.results.children, result_widget(result))

    def _draw_live(self, force: bool = False) -> None:
        if self.job is None or (not force and time.monotonic() - self._last_draw < REDRAW_SECONDS):
            return
        self._last_draw = time.monotonic()
        self.live.value = figure_png(self.job.live_figure())

    def _ipython_display_(self) -> None:
        display(self.widget)


def status_html(status: pd.DataFrame) -> str:
    """The status table as HTML, each state coloured."""
    table = status.assign(eta=[("" if state in FINISHED or eta != eta else format_seconds(eta))
                               for state, eta in zip(status["state"], status["eta_s"])])
    table = table.drop(columns=["eta_s"])
    table["epoch"] = [f"{e}/{n}" for e, n in zip(table["epoch"], table["epochs"])]
    table = table.drop(columns=["epochs"])
    table["state"] = [f"<span style='color:{STATE_COLORS.get(s, '#000')}'><b>{html.escape(s)}</b></span>"
                      for s in table["state"]]
    return table.to_html(index=False, escape=False, border=0)


def result_widget(result) -> widgets.Widget:
    """One rendered artifact: its figure(s), tables (ours beside the paper's) and verdicts."""
    images = [widgets.Image(value=path.read_bytes(), format="png", layout=widgets.Layout(max_width="100%"))
              for path in result.paths if path.suffix == ".png"]
    tables = [widgets.HTML(f"<b>{html.escape(name)}</b>" + _table_html(table))
              for name, table in result.tables.items()]
    verdicts = widgets.HTML("<b>claims</b>" + _table_html(result.verdicts.drop(columns=["artifact"])))
    title = widgets.HTML(f"<h3>{html.escape(result.spec.id)}: {html.escape(result.spec.title)} "
                         f"({html.escape(result.scale)} scale)</h3>")
    return widgets.VBox([title, *images, *tables, verdicts])


def _table_html(table: pd.DataFrame, rows: int = 40) -> str:
    shown = table.head(rows).to_html(index=False, border=0, float_format=lambda v: f"{v:.2f}")
    more = f"<i>… {len(table) - rows} more rows in the CSV</i>" if len(table) > rows else ""
    return shown + more


def show_artifact(result) -> None:
    """Display one rendered artifact in a notebook as plain outputs (no widgets): its figure(s),
    tables beside the paper's numbers and the claims' verdicts."""
    from IPython.display import Image, Markdown

    display(Markdown(f"### {result.spec.id}: {result.spec.title} ({result.scale} scale)"))
    for path in result.paths:
        if path.suffix == ".png":
            display(Image(filename=str(path)))
    for table in result.tables.values():
        display(table)
    display(result.verdicts.drop(columns=["artifact"]))
