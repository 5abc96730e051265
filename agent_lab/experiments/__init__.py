"""Drivers that call the training loop or read stored runs: HYDRA, the sparsity sweep, the robust
evaluation and the diagnostics of stored runs. They sit above ``agent_lab.train``; nothing below
imports them."""
from .diagnose import CHECKPOINT_DIAGNOSTICS, diagnose_run, snapshot_of_run
from .evaluate import evaluate_run
from .hydra import HydraResult, hydra_phase_epochs, run_hydra
from .stored import StoredRun, UnfinishedRunError, open_run, require_finished
from .sweep import (PAPER_PIPELINES, PAPER_SPARSITIES, correlation_table, plot_sparsity_sweep, sparsity_sweep,
                    sweep_configs, sweep_trend)

__all__ = ["CHECKPOINT_DIAGNOSTICS", "HydraResult", "PAPER_PIPELINES", "PAPER_SPARSITIES", "StoredRun",
           "UnfinishedRunError", "correlation_table", "diagnose_run", "evaluate_run", "hydra_phase_epochs",
           "open_run", "plot_sparsity_sweep", "require_finished", "run_hydra", "snapshot_of_run", "sparsity_sweep",
           "sweep_configs", "sweep_trend"]
