"""ipywidgets front ends used by the notebooks."""
from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

from .config import CHOICES, ConfigError, RunConfig
from .reporting import plot_training_curves, save_figure
from .runs import RunResult
from .train import train


class TrainPanel:
    """A small control panel: pick model, width, optimizer, lr and epochs, press *Train*.

    The run goes through :func:`agent_lab.train`, so it is cached and resumable like any other;
    the curves and the history table appear below the controls. ``panel.result`` holds the last
    :class:`RunResult`.
    """

    def __init__(self, base: RunConfig, out: str | Path = "runs", figures: str | Path | None = None) -> None:
        self.base, self.out, self.figures = base, out, figures
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
        return self.base.replace(model=self.model.value, width=float(self.width.value),
                                 optimizer=self.optimizer.value, lr=float(self.lr.value), epochs=int(self.epochs.value))

    def run(self) -> RunResult | None:
        self.output.clear_output()
        with self.output:
            try:
                config = self.config()
            except ConfigError as error:
                print(f"error: {error}")
                return None
            self.result = train(config, out=self.out)
            fig = plot_training_curves({f"{config.model} x{config.width:g}, {config.optimizer}": self.result.history})
            if self.figures is not None:
                save_figure(fig, Path(self.figures) / "training_curves")
            plt.show()
            display(self.result.history)
        return self.result

    def _ipython_display_(self) -> None:
        display(self.widget)
