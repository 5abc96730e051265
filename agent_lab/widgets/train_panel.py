"""TrainPanel: train one configuration from a notebook."""
from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

from ..config import CHOICES, ConfigError, RunConfig, default_momentum
from ..reporting import label_figure, plot_training_curves, save_figure, show
from ..runs import RunResult
from ..train import train


class TrainPanel:
    """A small control panel: pick model, width, optimizer, lr and epochs, press *Train*.

    The run goes through :func:`agent_lab.train`, so it is cached and resumable like any other;
    the curves and the history table appear below the controls. ``panel.result`` holds the last
    :class:`RunResult`. With ``scale="smoke"`` the figure and the table carry the smoke label
    (:data:`agent_lab.reporting.SMOKE_LABEL`).
    """

    def __init__(self, base: RunConfig, out: str | Path = "runs", figures: str | Path | None = None,
                 scale: str | None = None) -> None:
        self.base, self.out, self.figures, self.scale = base, out, figures, scale
        self.result: RunResult | None = None
        self.model = widgets.Dropdown(options=list(CHOICES["model"][:6]), value=base.model, description="model")
        self.width = widgets.FloatLogSlider(value=base.width, base=2, min=-4, max=0, step=1, description="width")
        self.optimizer = widgets.Dropdown(options=list(CHOICES["optimizer"]), value=base.optimizer,
                                          description="optimizer")
        self.lr = widgets.FloatLogSlider(value=base.lr, base=10, min=-4, max=0, step=0.1, description="lr")
        self.epochs = widgets.IntSlider(value=base.epochs, min=1, max=max(50, base.epochs), description="epochs")
        self.button = widgets.Button(description="Train", button_style="primary", icon="play")
        self.output = widgets.Output()
        self.button.on_click(lambda _: self.run())
        self.widget = widgets.VBox([
            widgets.HBox([self.model, self.width, self.optimizer]),
            widgets.HBox([self.lr, self.epochs, self.button]),
            self.output,
        ])

    def config(self) -> RunConfig:
        changes = dict(model=self.model.value, width=float(self.width.value), optimizer=self.optimizer.value,
                       lr=float(self.lr.value), epochs=int(self.epochs.value))
        if self.optimizer.value != self.base.optimizer and self.base.momentum == default_momentum(self.base.optimizer):
            # The panel has no momentum control: a base at its optimizer's default momentum gets the
            # chosen optimizer's default (0 for mvr and agent-mvr), not a momentum they refuse.
            changes["momentum"] = None
        return self.base.replace(**changes)

    def run(self) -> RunResult | None:
        self.output.clear_output()
        with self.output:
            try:
                config = self.config()
            except ConfigError as error:
                print(f"error: {error}")
                return None
            self.result = train(config, out=self.out)
            fig = label_figure(plot_training_curves({f"{config.model} x{config.width:g}, {config.optimizer}":
                                                     self.result.history}), self.scale)
            if self.figures is not None:
                save_figure(fig, Path(self.figures) / "training_curves", scale=self.scale)
            plt.show()
            display(show(self.result.history, self.scale))
        return self.result

    def _ipython_display_(self) -> None:
        display(self.widget)
