"""agent-lab: AGENT adaptive gradient correction for sparse training, its pipelines, baselines
and diagnostics."""
__version__ = "0.1.0"

from .config import ConfigError, RunConfig  # noqa: E402
from .runs import RunResult, list_runs, load_run  # noqa: E402
from .train import Trainer, evaluate_model, train  # noqa: E402

__all__ = ["ConfigError", "RunConfig", "RunResult", "Trainer", "evaluate_model", "list_runs", "load_run",
           "train", "__version__"]
