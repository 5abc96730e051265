"""Robust evaluation of a stored run: ``agent-lab evaluate --run DIR --attack pgd50 --restarts 10``.

The run's model is rebuilt from its last checkpoint and attacked on the run's test set (the
same ``test_subset`` it was trained with, or a class-stratified ``limit`` examples of it). Per-example
results go to ``<run>/robust_<attack>x<restarts>_eps<ε·255>.csv`` and the summary is merged into
``<run>/robust_eval.json`` under the same key, so several protocols can sit side by side.

Only a completed run is attacked unless ``allow_partial=True`` (``--allow-partial``): an
interrupted, diverged or still running run raises
:class:`~agent_lab.experiments.stored.UnfinishedRunError` (a ``ValueError``). The summary and
every per-example row record the checkpoint's completed epochs (``epoch``) and the run's status
(``run_status``).
"""
from __future__ import annotations

from pathlib import Path

from ..adversarial import RobustResult, named_attack, robust_evaluate
from ..build import load_bundle
from ..data import make_loaders
from ..runs import load_run, read_json, write_csv, write_json
from .stored import open_run

SUMMARY_FILE = "robust_eval.json"


def evaluation_key(attack: str, restarts: int, epsilon: float) -> str:
    return f"robust_{attack}x{restarts}_eps{epsilon * 255:g}"


def evaluate_run(run_dir: str | Path, *, attack: str = "pgd50", restarts: int = 10, epsilon: float | None = None,
                 limit: int | None = None, batch_size: int | None = None, device: str = "auto", seed: int = 0,
                 progress: bool = True, save: bool = True, allow_partial: bool = False) -> RobustResult:
    """Attack the run in ``run_dir`` with ``attack`` × ``restarts`` (ε defaults to the run's).

    A run that is not completed raises ``UnfinishedRunError`` (a ``ValueError``) unless
    ``allow_partial``; what is written records the checkpoint's ``epoch`` and the ``run_status``.
    """
    config = load_run(run_dir, verify="none").config  # the arguments are checked before the run
    epsilon = config.epsilon if epsilon is None else epsilon
    pgd = named_attack(attack, epsilon, bn_mode="eval")  # the evaluated network; validates attack and epsilon
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit: {limit!r} is invalid; expected a positive number of test examples")
    stored = open_run(run_dir, device, allow_partial=allow_partial)
    run, model, torch_device = stored.run, stored.model, stored.device
    stored_at = {"epoch": stored.epoch, "run_status": run.status}
    del stored
    bundle = load_bundle(config)
    if limit is not None:
        bundle = bundle.subset(None, min(limit, len(bundle.test)), seed=config.seed)
    _, test_loader = make_loaders(bundle, config.batch_size, eval_batch_size=batch_size or config.eval_batch_size,
                                  seed=config.seed, device=torch_device, augment=False)
    result = robust_evaluate(model, test_loader.epoch(0), pgd, restarts=restarts, seed=seed, progress=progress,
                             total=len(test_loader))
    if save:
        key = evaluation_key(attack, restarts, epsilon)
        run_path = Path(run.run_dir)
        write_csv(run_path / f"{key}.csv", result.per_example.assign(**stored_at))
        summary_path = run_path / SUMMARY_FILE
        summaries = read_json(summary_path) if summary_path.exists() else {}
        summaries[key] = {**result.summary(), "attack": attack, "seed": seed, "limit": limit, **stored_at}
        write_json(summary_path, summaries)
    return result
