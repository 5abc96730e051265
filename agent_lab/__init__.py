"""agent-lab: AGENT adaptive gradient correction for sparse training, its pipelines, baselines
and diagnostics."""
from ._version import __version__
from .config import ConfigError, RunConfig
from .runs import RunResult, list_runs, load_run
from .train import Trainer, evaluate_model, train

__all__ = ["ConfigError", "RunConfig", "RunResult", "Trainer", "evaluate_model", "list_runs", "load_run",
           "train", "__version__"]
