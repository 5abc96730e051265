"""Diagnostics of a stored run's final model: ``agent-lab diagnose --run DIR``.

The model is rebuilt from the run's checkpoint and its sparsity masks are read from the saved
sparsifier state (never inferred from zero weights, which would misread weights that are exactly
zero). On the run's training set (its ``train_subset``, natural loss), in batches of the run's
batch size drawn in a shuffled order (``full_pass_loader`` with the run's seed, pass ``seed``: never
in storage order, which may be sorted by class), without augmentation unless ``augment``:

* ``variance``: gradient variance across the first ``batches`` full minibatches of that order,
  BN in train mode, at the checkpoint perturbed by N(0, ``variance_sigma``²) in ``replicates``
  replicates (App. C.1: "add small perturbations to the weights ... three replicates"; the paper
  gives no σ for this one, the default is Table 7's 0.015);
* ``correlation``: the Pearson correlation between the full gradient over the whole training
  set at w and at w + N(0, ``sigma``²), ``replicates`` replicates (Table 7, App. B.6), BN in
  train mode over the same shuffled batches.

Statistics are over active (unmasked) coordinates. Results are returned as a tidy DataFrame
(``metric, value, std, replicates, ..., epoch, run_status``) and merged into ``<run>/diagnostics.json``.

Only a completed run is measured unless ``allow_partial=True``: an interrupted, diverged or still
running run raises :class:`UnfinishedRunError` (a ``ValueError``) naming its status and epochs.
Every row records the checkpoint's completed epochs (``epoch``) and the run's status
(``run_status``), so a measurement of a partial run is never mistaken for the final one.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from ..data import full_pass_loader
from ..runs import CHECKPOINT_FILE, RunResult, load_checkpoint, load_run, read_json, write_json
from .correlation import gradient_correlation
from .variance import gradient_variance

CHECKPOINT_DIAGNOSTICS = ("variance", "correlation")
SUMMARY_FILE = "diagnostics.json"


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


def run_checkpoint(run: RunResult, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint of a stored run (that of its last completed epoch)."""
    path = Path(run.run_dir) / CHECKPOINT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run {run.run_dir} ({run.status}) has no completed epoch "
                                f"to load; train it (again) first")
    return load_checkpoint(path, map_location=map_location)


def model_from_checkpoint(run: RunResult, checkpoint: dict, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The run's model with the weights of ``checkpoint``, in eval mode (``RunResult.load_model``
    without reading the checkpoint a second time)."""
    from ..train import build_model_for

    model = build_model_for(run.config, checkpoint["data_info"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()


def run_masks(checkpoint: dict) -> dict[str, torch.Tensor] | None:
    """The sparsity masks saved in a training checkpoint (None for a dense run)."""
    state = checkpoint.get("callbacks", {}).get("sparsity")
    if not state:
        return None
    return {name: mask.bool() for name, mask in state["sparsifier"]["masks"]["masks"].items()}


def diagnose_run(run_dir: str | Path, what: Sequence[str] = CHECKPOINT_DIAGNOSTICS, *, batches: int = 20,
                 sigma: float = 0.015, variance_sigma: float = 0.015, replicates: int = 3,
                 active_only: bool = False, seed: int = 0, augment: bool = False, device: str = "auto",
                 save: bool = True, allow_partial: bool = False) -> pd.DataFrame:
    """Gradient variance and/or correlation under perturbation of the run in ``run_dir``.

    A run that is not completed raises :class:`UnfinishedRunError` unless ``allow_partial``; every
    row records the checkpoint's ``epoch`` and the ``run_status``.
    """
    from ..train import load_bundle, resolve_device

    what = [what] if isinstance(what, str) else list(what)
    unknown = [w for w in what if w not in CHECKPOINT_DIAGNOSTICS]
    if unknown or not what:
        raise ValueError(f"what: {unknown or what!r} is invalid; valid choices: {', '.join(CHECKPOINT_DIAGNOSTICS)}")
    if not isinstance(batches, int) or isinstance(batches, bool) or batches < 2:
        raise ValueError(f"batches: {batches!r} is invalid; expected an integer >= 2")
    if not isinstance(augment, bool):
        raise ValueError(f"augment: {augment!r} is invalid; expected True or False")
    run = load_run(run_dir, verify="full")  # the checkpoint is read whole anyway: check it whole
    require_finished(run, allow_partial)
    config = run.config
    torch_device = resolve_device(device)
    checkpoint = run_checkpoint(run, map_location=torch_device)
    model = model_from_checkpoint(run, checkpoint, torch_device)
    masks = run_masks(checkpoint)
    bundle = load_bundle(config)
    images, labels = getattr(bundle.train, "images", None), bundle.train.labels
    if images is None:
        raise ValueError(f"dataset: {config.dataset!r} is streamed; diagnostics need an in-memory training set")
    passes = dict(seed=config.seed, augment=augment, flip=bundle.flip, device=torch_device)
    sampled = full_pass_loader(images, labels, config.batch_size, drop_last=True, **passes)
    full = full_pass_loader(images, labels, config.batch_size, **passes)
    if len(sampled) < 2:
        raise ValueError(f"batches: the training set holds {len(sampled)} full batch(es) of {config.batch_size}; "
                         "the variance needs at least 2")
    rows = []
    common = {"run": Path(run.run_dir).name, "pipeline": config.pipeline, "sparsity": config.sparsity,
              "optimizer": config.optimizer, "adversarial": config.adversarial, "seed": config.seed,
              "pass_seed": seed, "active_only": active_only, "augment": augment, "batch_size": config.batch_size,
              "epoch": int(checkpoint["state"]["epoch"]), "run_status": run.status}
    if "variance" in what:
        k = min(batches, len(sampled))
        start = time.perf_counter()
        result = gradient_variance(model, lambda: (sampled.batch(seed, s) for s in range(k)), masks=masks,
                                   perturb_sigma=variance_sigma, replicates=replicates, active_only=active_only,
                                   seed=seed)
        seconds = time.perf_counter() - start
        rows.append({**common, "metric": "grad_var", "value": result.mean_variance, "std": result.mean_variance_std,
                     "replicates": result.replicates, "sigma": variance_sigma, "batches": k, "seconds": seconds,
                     "n_active": result.n_active})
        rows.append({**common, "metric": "grad_var_trace", "value": result.trace, "std": result.trace_std,
                     "replicates": result.replicates, "sigma": variance_sigma, "batches": k, "seconds": seconds,
                     "n_active": result.n_active})
    if "correlation" in what:
        start = time.perf_counter()
        result = gradient_correlation(model, lambda: full.epoch(seed), sigma=sigma, replicates=replicates,
                                      active_only=active_only, masks=masks, seed=seed)
        rows.append({**common, "metric": "grad_corr", "value": result.mean, "std": result.std,
                     "replicates": result.replicates, "sigma": sigma, "batches": len(full),
                     "seconds": time.perf_counter() - start, "n_active": result.n_active})
    table = pd.DataFrame(rows)
    if save:
        path = Path(run.run_dir) / SUMMARY_FILE
        stored = read_json(path) if path.exists() else {}
        for row in rows:
            protocol = ("_active" if active_only else "") + ("_augmented" if augment else "")
            stored[f"{row['metric']}_sigma{row['sigma']:g}_r{row['replicates']}{protocol}"] = row
        write_json(path, stored)
    return table


def snapshot_of_run(run_dir: str | Path, device: str = "auto", *,
                    allow_partial: bool = False) -> tuple[torch.nn.Module, torch.nn.Module | None, dict]:
    """The final model of a stored AGENT-family run, its last snapshot θ̃ and the corrector's state.

    Returns ``(model, snapshot, info)``: ``snapshot`` is None for a run without a corrector (or
    before its first refresh); ``info`` holds ``gamma``, the checkpoint's ``epoch`` and the
    ``run_status``, and with a snapshot ``c_hat``, ``c_hat_star`` and ``refreshes``. A run that is
    not completed raises :class:`UnfinishedRunError` unless ``allow_partial``.
    Use it for Fig. 2 on a real run: ``variance_vs_c(model, snapshot, batches)``.
    """
    from ..optim.agent import GradientCorrector
    from ..train import resolve_device

    run = load_run(run_dir, verify="full")  # the checkpoint is read whole anyway: check it whole
    require_finished(run, allow_partial)
    torch_device = resolve_device(device)
    checkpoint = run_checkpoint(run, map_location=torch_device)
    model = model_from_checkpoint(run, checkpoint, torch_device)
    state = (checkpoint.get("callbacks", {}).get("correction") or {}).get("corrector")
    info = {"gamma": run.config.gamma, "epoch": int(checkpoint["state"]["epoch"]), "run_status": run.status}
    if not state or state.get("snapshot") is None:
        return model, None, info
    corrector = GradientCorrector(model)  # rebuilds θ̃ from the saved state, names checked
    corrector.load_state_dict(state)
    info.update(c_hat=corrector.c_hat, c_hat_star=corrector.c_hat_star, refreshes=corrector.refreshes)
    return model, corrector.snapshot_model, info
