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
running run raises :class:`~agent_lab.experiments.stored.UnfinishedRunError` (a ``ValueError``) naming its status and epochs.
Every row records the checkpoint's completed epochs (``epoch``) and the run's status
(``run_status``), so a measurement of a partial run is never mistaken for the final one.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from ..build import load_bundle
from ..data import full_pass_loader
from ..diagnostics import gradient_correlation, gradient_variance
from ..optim.agent import GradientCorrector
from ..runs import read_json, write_json
from .stored import open_run

CHECKPOINT_DIAGNOSTICS = ("variance", "correlation")
SUMMARY_FILE = "diagnostics.json"


def diagnose_run(run_dir: str | Path, what: Sequence[str] = CHECKPOINT_DIAGNOSTICS, *, batches: int = 20,
                 sigma: float = 0.015, variance_sigma: float = 0.015, replicates: int = 3,
                 active_only: bool = False, seed: int = 0, augment: bool = False, device: str = "auto",
                 save: bool = True, allow_partial: bool = False) -> pd.DataFrame:
    """Gradient variance and/or correlation under perturbation of the run in ``run_dir``.

    A run that is not completed raises :class:`~agent_lab.experiments.stored.UnfinishedRunError` unless ``allow_partial``; every
    row records the checkpoint's ``epoch`` and the ``run_status``.
    """
    what = [what] if isinstance(what, str) else list(what)
    unknown = [w for w in what if w not in CHECKPOINT_DIAGNOSTICS]
    if unknown or not what:
        raise ValueError(f"what: {unknown or what!r} is invalid; valid choices: {', '.join(CHECKPOINT_DIAGNOSTICS)}")
    if not isinstance(batches, int) or isinstance(batches, bool) or batches < 2:
        raise ValueError(f"batches: {batches!r} is invalid; expected an integer >= 2")
    if not isinstance(augment, bool):
        raise ValueError(f"augment: {augment!r} is invalid; expected True or False")
    stored = open_run(run_dir, device, allow_partial=allow_partial)
    run, config, model, masks, torch_device = stored.run, stored.run.config, stored.model, stored.masks, stored.device
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
              "epoch": stored.epoch, "run_status": run.status}
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
        summary = read_json(path) if path.exists() else {}
        for row in rows:
            protocol = ("_active" if active_only else "") + ("_augmented" if augment else "")
            summary[f"{row['metric']}_sigma{row['sigma']:g}_r{row['replicates']}{protocol}"] = row
        write_json(path, summary)
    return table


def snapshot_of_run(run_dir: str | Path, device: str = "auto", *,
                    allow_partial: bool = False) -> tuple[torch.nn.Module, torch.nn.Module | None, dict]:
    """The final model of a stored AGENT-family run, its last snapshot θ̃ and the corrector's state.

    Returns ``(model, snapshot, info)``: ``snapshot`` is None for a run without a corrector (or
    before its first refresh); ``info`` holds ``gamma``, the checkpoint's ``epoch`` and the
    ``run_status``, and with a snapshot ``c_hat``, ``c_hat_star`` and ``refreshes``. A run that is
    not completed raises :class:`~agent_lab.experiments.stored.UnfinishedRunError` unless ``allow_partial``.
    Use it for Fig. 2 on a real run: ``variance_vs_c(model, snapshot, batches)``.
    """
    stored = open_run(run_dir, device, allow_partial=allow_partial)
    run, checkpoint, model = stored.run, stored.checkpoint, stored.model
    state = (checkpoint.get("callbacks", {}).get("correction") or {}).get("corrector")
    info = {"gamma": run.config.gamma, "epoch": int(checkpoint["state"]["epoch"]), "run_status": run.status}
    if not state or state.get("snapshot") is None:
        return model, None, info
    corrector = GradientCorrector(model)  # rebuilds θ̃ from the saved state, names checked
    corrector.load_state_dict(state)
    info.update(c_hat=corrector.c_hat, c_hat_star=corrector.c_hat_star, refreshes=corrector.refreshes)
    return model, corrector.snapshot_model, info
