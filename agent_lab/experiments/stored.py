"""Opening a stored run for a driver: its record, checkpoint, model, masks and device.

Every driver that reads a stored run (robust evaluation, diagnostics, ĉ* snapshots, HYDRA's
finished runs) opens it here, so the checks are the same everywhere: the files are verified
against ``meta.json``, and a run that is not completed is refused unless ``allow_partial``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..build import checkpoint_masks, model_from_checkpoint, resolve_device
from ..runs import CHECKPOINT_FILE, RunResult, load_checkpoint, load_run
from .archive import ARCHIVED_KEY


class UnfinishedRunError(ValueError):
    """A stored run is not completed (interrupted, diverged or still running) and ``allow_partial`` is off."""

    def __init__(self, message: str, run_dir: Path, status: str, epochs_done: int | None, epochs: int):
        super().__init__(message)
        self.run_dir, self.status, self.epochs_done, self.epochs = run_dir, status, epochs_done, epochs


def _epochs_done(run: RunResult) -> int | None:
    """Completed epochs of a stored run, from ``meta.json`` (the last save) or else its history."""
    done = run.meta.get("epochs_done")
    if isinstance(done, int) and not isinstance(done, bool):
        return done
    history = run.history
    if "train_loss" in history:  # a diverged epoch's row has no training loss
        return int(history["train_loss"].notna().sum())
    return len(history) if len(history) else None


def require_finished(run: RunResult, allow_partial: bool = False) -> None:
    """Refuse (:class:`UnfinishedRunError`, one line) a run whose status is not ``completed``.

    ``allow_partial=True`` accepts it: its checkpoint is that of its last completed epoch.
    """
    if not isinstance(allow_partial, bool):
        raise ValueError(f"allow_partial: {allow_partial!r} is invalid; expected True or False")
    if run.status == "completed" or allow_partial:
        return
    run_dir = Path(run.run_dir)
    done = _epochs_done(run)
    epochs = run.config.epochs
    at = "no epoch" if done is None else f"epoch {done}"
    use = f"or pass --allow-partial (allow_partial=True) to use its checkpoint of {at}"
    if run.status == "diverged":
        remedy = f"a diverged run cannot be finished (training the config again returns it as it is); {use}"
    elif run.status == "running":
        remedy = f"wait until the process training it finishes, {use}"
    else:
        remedy = (f"finish it by training the same config again, which resumes it (`agent-lab train` with the "
                  f"settings of its {run_dir.name}/config.json and --out {run_dir.parent}, or "
                  f"agent_lab.train(config, out=...)), {use}")
    raise UnfinishedRunError(f"run {run_dir} is {run.status}: {'?' if done is None else done} of {epochs} epochs "
                             f"done; {remedy}", run_dir, run.status, done, epochs)


@dataclass
class StoredRun:
    """A stored run opened for measurement: ``model`` (eval mode, on ``device``) holds the checkpoint's weights."""

    run: RunResult
    checkpoint: dict[str, Any]
    model: torch.nn.Module
    masks: dict[str, torch.Tensor] | None
    device: torch.device

    @property
    def epoch(self) -> int:
        """Completed epochs of the checkpoint."""
        return int(self.checkpoint["state"]["epoch"])


def open_run(run_dir: str | Path, device: str = "auto", *, allow_partial: bool = False) -> StoredRun:
    """Verify, check and load the run in ``run_dir`` (see the module docstring)."""
    run = load_run(run_dir, verify="full")  # the checkpoint is read whole anyway: check it whole
    require_finished(run, allow_partial)
    torch_device = resolve_device(device)
    path = Path(run.run_dir) / CHECKPOINT_FILE
    if not path.exists() and ARCHIVED_KEY in run.meta:
        raise FileNotFoundError(f"{path} is missing: run {run.run_dir} was restored from an archive, which keeps "
                                f"no checkpoints; to measure its weights, delete the folder and train the config "
                                f"again (agent-lab train ... --no-resume)")
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run {run.run_dir} ({run.status}) has no completed epoch "
                                f"to load; train it (again) first")
    checkpoint = load_checkpoint(path, map_location=torch_device)
    model = model_from_checkpoint(run.config, checkpoint, torch_device)
    return StoredRun(run=run, checkpoint=checkpoint, model=model, masks=checkpoint_masks(checkpoint),
                     device=torch_device)
