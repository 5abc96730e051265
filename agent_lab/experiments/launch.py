"""Train many runs at once: worker processes on one machine, or SLURM jobs through submitit.

No scheduler of our own: the run store's file lock per run folder already guarantees that no config
is trained twice, by any number of workers or commands started together. A worker takes the runs
in its own rotated order, skips a run another worker holds (``lock_timeout=0``) and comes back to
it at the end, when it is served from the store. An interrupted run resumes from its checkpoint
wherever it is picked up again.

* :func:`launch_local`: ``jobs`` worker processes on this machine; with ``devices`` each worker
  sees one device (``CUDA_VISIBLE_DEVICES``), round-robin.
* :func:`launch_submitit`: one submitit job per run (``cluster="slurm"`` on a SLURM cluster;
  ``"local"`` or ``"debug"`` here). A job that SLURM pre-empts or times out is requeued through
  submitit's checkpointing hook and its run resumes from its last checkpoint.
"""
from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any, Sequence

from ..config import RunConfig
from ..runs import RunLockedError

__all__ = ["LAUNCHERS", "TrainJob", "launch_local", "launch_submitit", "train_each"]

LAUNCHERS = ("local", "submitit")


def train_each(configs: Sequence[RunConfig], out: str | Path, *, start: int = 0) -> dict[str, str]:
    """Train every config (from position ``start`` on, wrapping around), skipping those another
    process holds until the end; returns ``{run name: status}``."""
    from ..train import train

    order = list(configs[start % max(len(configs), 1):]) + list(configs[:start % max(len(configs), 1)])
    statuses: dict[str, str] = {}
    deferred = []
    for config in order:
        try:
            statuses[config.run_name()] = train(config, out=out, progress=False, lock_timeout=0).status
        except RunLockedError:
            deferred.append(config)
    for config in deferred:  # waits for the holder, then serves (or resumes) the run
        statuses[config.run_name()] = train(config, out=out, progress=False).status
    return statuses


def _local_worker(configs: list[dict[str, Any]], out: str, start: int, device: str | None, threads: int | None,
                  results) -> None:
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    if threads is not None:
        import torch
        torch.set_num_threads(threads)
    results.put(train_each([RunConfig.from_dict(c) for c in configs], out, start=start))


def launch_local(configs: Sequence[RunConfig], out: str | Path, jobs: int = 1, *,
                 devices: Sequence[str] | None = None, threads: int | None = None) -> dict[str, str]:
    """Train ``configs`` with ``jobs`` worker processes on this machine; returns ``{run name: status}``.

    ``devices`` (e.g. ``["0", "1"]``) gives worker *i* the device ``devices[i % len(devices)]``;
    ``threads`` sets each worker's torch threads (CPU workers sharing a machine)."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs: {jobs!r} is invalid; expected a whole number >= 1")
    if not configs:
        return {}
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    plain = [c.to_dict() for c in configs]
    workers = []
    for i in range(jobs):
        device = None if not devices else str(devices[i % len(devices)])
        start = i * len(configs) // jobs
        worker = context.Process(target=_local_worker, args=(plain, str(out), start, device, threads, results))
        worker.start()
        workers.append(worker)
    statuses: dict[str, str] = {}
    for _ in workers:
        statuses.update(results.get())
    for worker in workers:
        worker.join()
    failed = [w.exitcode for w in workers if w.exitcode]
    if failed:
        raise RuntimeError(f"{len(failed)} of {jobs} workers failed (exit codes {failed}); "
                           "run the command again to resume their runs")
    return statuses


class TrainJob:
    """One run as a submitit job: ``job()`` trains (or resumes, or serves) it and returns its status;
    ``checkpoint()`` is submitit's requeue hook (pre-emption, time-out): the requeued job resumes the
    run from its last checkpoint."""

    def __init__(self, config: dict[str, Any], out: str) -> None:
        self.config, self.out = dict(config), str(out)

    def __call__(self) -> str:
        from ..train import train
        return train(RunConfig.from_dict(self.config), out=self.out, progress=False).status

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit
        return submitit.helpers.DelayedSubmission(TrainJob(self.config, self.out))


def launch_submitit(configs: Sequence[RunConfig], out: str | Path, *, folder: str | Path = "runs/.submitit",
                    cluster: str | None = None, partition: str | None = None, time_minutes: int = 24 * 60,
                    gpus_per_job: int = 1, cpus_per_job: int | None = None, wait: bool = True) -> dict[str, Any]:
    """One submitit job per config (``cluster``: None = what submitit finds, ``slurm``, ``local``,
    ``debug``); returns ``{run name: status}`` when ``wait``, else ``{run name: job id}``."""
    try:
        import submitit
    except ImportError:
        raise ValueError("launcher 'submitit' needs the submitit package: pip install 'agent-lab[cluster]'") from None
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    parameters: dict[str, Any] = {"timeout_min": int(time_minutes)}
    if executor.cluster == "slurm":
        parameters.update(slurm_partition=partition, gpus_per_node=gpus_per_job, tasks_per_node=1)
        if cpus_per_job is not None:
            parameters["cpus_per_task"] = cpus_per_job
    executor.update_parameters(**{k: v for k, v in parameters.items() if v is not None})
    jobs = {config.run_name(): executor.submit(TrainJob(config.to_dict(), str(out))) for config in configs}
    if not wait:
        return {name: job.job_id for name, job in jobs.items()}
    return {name: job.result() for name, job in jobs.items()}
