"""RunBrowser: pick stored runs by their config fields and compare their histories with seed bands."""
from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets
from IPython.display import display

from ..experiments.compare import (X_AXES, field_text, history_columns, plot_seed_bands, run_histories, run_index, select_runs,
                                   varying_fields)
from ..reporting import figure_png, label_figure


class RunBrowser:
    """One multi-select per config field that differs between the stored runs (all values chosen at
    first), the history columns and the x axis (epoch, wall-clock, ``fwd_bwd``); **Plot** overlays the
    chosen runs, the seeds of one config drawn as its mean with a ± std band. ``browser.histories``
    holds the plotted data, ``browser.figure`` the last figure."""

    def __init__(self, out: str | Path = "runs", scale: str | None = None) -> None:
        self.out, self.scale = Path(out), scale
        self.histories = None
        self.figure = None
        self.index = run_index(self.out)
        self.fields = varying_fields(self.index) if len(self.index) else []
        self.filters = {field: widgets.SelectMultiple(
            options=sorted({str(v) for v in self.index[field].map(field_text)}),
            value=tuple(sorted({str(v) for v in self.index[field].map(field_text)})), description=field, rows=4)
            for field in self.fields}
        self.columns = widgets.SelectMultiple(options=["test_acc", "train_loss", "train_acc", "test_loss", "lr"],
                                              value=("test_acc",), description="columns", rows=5)
        self.x = widgets.Dropdown(options=list(X_AXES), value="epoch", description="x")
        self.plot_button = widgets.Button(description="Plot", button_style="primary", icon="line-chart")
        self.count = widgets.Label()
        self.image = widgets.Image(format="png")
        self.message = widgets.HTML()
        self.plot_button.on_click(lambda _: self.plot())
        for control in self.filters.values():
            control.observe(lambda _: self._count(), "value")
        self._count()
        empty = widgets.HTML(f"<i>no runs in {self.out}</i>") if self.index.empty else widgets.HTML()
        self.widget = widgets.VBox([empty, widgets.GridBox(list(self.filters.values()),
                                                           layout=widgets.Layout(grid_template_columns="repeat(3, 33%)")),
                                    widgets.HBox([self.columns, self.x, self.plot_button, self.count]),
                                    self.message, self.image])

    def selected(self):
        """The stored runs the filters keep (rows of :func:`agent_lab.experiments.compare.run_index`)."""
        if self.index.empty:
            return self.index
        return select_runs(self.index, {field: control.value for field, control in self.filters.items()})

    def _count(self) -> None:
        self.count.value = f"{len(self.selected())} of {len(self.index)} runs"

    def plot(self):
        """Draw the chosen columns of the chosen runs; returns the figure (None when nothing is chosen)."""
        runs = self.selected()
        if runs.empty:
            self.message.value = "<i>no run matches the filters</i>"
            return None
        self.histories = run_histories(self.out, runs, self.fields)
        columns = [c for c in self.columns.value if c in self.histories.columns]
        options = history_columns(self.histories)
        self.columns.options = options
        self.columns.value = tuple(c for c in columns if c in options) or (options[0],)
        try:
            fig = label_figure(plot_seed_bands(self.histories, self.columns.value, self.x.value), self.scale)
        except ValueError as error:
            self.message.value = f"<b>error</b>: {error}"
            return None
        self.message.value = ""
        self.figure = fig
        self.image.value = figure_png(fig)
        return fig

    def _ipython_display_(self) -> None:
        display(self.widget)

