"""Drivers that call the training loop or read stored runs: HYDRA, the sparsity sweep, the robust
evaluation and the diagnostics of stored runs, the slim archived copies of finished runs. They sit
above ``agent_lab.train``; nothing below imports them."""
from .archive import archive_run, has_weights, is_archived, restore_run
from .diagnose import CHECKPOINT_DIAGNOSTICS, diagnose_run, snapshot_of_run
from .evaluate import evaluate_run
from .hydra import HydraResult, hydra_phase_epochs, run_hydra
from .stored import StoredRun, UnfinishedRunError, open_run, require_finished
from .sweep import (PAPER_PIPELINES, PAPER_SPARSITIES, correlation_table, plot_sparsity_sweep, sparsity_sweep,
                    sweep_configs, sweep_trend)

__all__ = ["CHECKPOINT_DIAGNOSTICS", "HydraResult", "PAPER_PIPELINES", "PAPER_SPARSITIES", "StoredRun",
           "UnfinishedRunError", "archive_run", "correlation_table", "diagnose_run", "evaluate_run",
           "has_weights", "hydra_phase_epochs", "is_archived", "open_run", "plot_sparsity_sweep", "require_finished",
           "restore_run", "run_hydra", "snapshot_of_run", "sparsity_sweep", "sweep_configs", "sweep_trend"]
