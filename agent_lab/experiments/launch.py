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

Both return at once with ``wait=False``: a :class:`Launch` that can be polled (``done``), waited
for (``wait``) or cancelled (``cancel``: the runs in training lose at most their current epoch and
resume where they are picked up again). Each queued run has a marker in ``<out>/.queue/`` until its
trainer takes the run's lock, so that ``agent-lab list`` and the notebooks' panel show it as
``queued``; a marker whose pool or job has ended without starting the run counts for nothing.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
from pathlib import Path
from typing import Any, Sequence

from ..config import RunConfig
from ..runs import RunLockedError, clear_queued, mark_queued, run_dir_for

__all__ = ["LAUNCHERS", "Launch", "TrainJob", "launch", "launch_local", "launch_submitit", "train_each"]

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


def visible_devices() -> list[str] | None:
    """The GPUs this process sees, as ``CUDA_VISIBLE_DEVICES`` entries (None without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return None
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed or [str(i) for i in range(torch.cuda.device_count())]


class Launch:
    """Runs handed to workers or cluster jobs: poll :meth:`done`, :meth:`wait` for ``{run name:
    status}``, or :meth:`cancel`."""

    def __init__(self, configs: Sequence[RunConfig], out: str | Path) -> None:
        self.run_dirs = [run_dir_for(config, out) for config in configs]

    def done(self) -> bool:
        raise NotImplementedError

    def wait(self) -> dict[str, Any]:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError

    def _forget(self) -> None:
        """Remove the queue markers of runs that were never started."""
        for run_dir in self.run_dirs:
            clear_queued(run_dir)


class LocalLaunch(Launch):
    """``jobs`` worker processes on this machine (see :func:`launch_local`)."""

    def __init__(self, configs: Sequence[RunConfig], out: str | Path, jobs: int, devices: Sequence[str] | None,
                 threads: int | None) -> None:
        super().__init__(configs, out)
        for run_dir in self.run_dirs:
            mark_queued(run_dir, "local", pid=os.getpid())
        context = multiprocessing.get_context("spawn")
        self._results = context.Queue()
        self.statuses: dict[str, str] = {}
        plain = [c.to_dict() for c in configs]
        self.workers = []
        for i in range(jobs):
            device = None if not devices else str(devices[i % len(devices)])
            start = i * len(configs) // jobs
            worker = context.Process(target=_local_worker, args=(plain, str(out), start, device, threads,
                                                                 self._results))
            worker.start()
            self.workers.append(worker)

    def _drain(self) -> None:
        while True:
            try:
                self.statuses.update(self._results.get_nowait())
            except queue.Empty:
                return

    def done(self) -> bool:
        self._drain()
        return not any(worker.is_alive() for worker in self.workers)

    def wait(self) -> dict[str, str]:
        for worker in self.workers:
            while worker.is_alive():
                self._drain()
                worker.join(0.2)
        self._drain()
        self._forget()
        failed = [w.exitcode for w in self.workers if w.exitcode]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(self.workers)} workers failed (exit codes {failed}); "
                               "run the command again to resume their runs")
        return self.statuses

    def cancel(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.join()
        self._drain()
        self._forget()


def launch_local(configs: Sequence[RunConfig], out: str | Path, jobs: int = 1, *,
                 devices: Sequence[str] | None = None, threads: int | None = None,
                 wait: bool = True) -> dict[str, str] | LocalLaunch:
    """Train ``configs`` with ``jobs`` worker processes on this machine; returns ``{run name: status}``
    (``wait=False``: the :class:`Launch` at once).

    ``devices`` (e.g. ``["0", "1"]``) gives worker *i* the device ``devices[i % len(devices)]``
    [default: every GPU this process sees, or none on a CPU machine]; ``threads`` sets each
    worker's torch threads (CPU workers sharing a machine)."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs: {jobs!r} is invalid; expected a whole number >= 1")
    if not configs:
        return {} if wait else _NothingLaunched()
    launched = LocalLaunch(configs, out, jobs, visible_devices() if devices is None else devices, threads)
    return launched.wait() if wait else launched


class _NothingLaunched(Launch):
    def __init__(self) -> None:
        super().__init__((), ".")

    def done(self) -> bool:
        return True

    def wait(self) -> dict[str, Any]:
        return {}

    def cancel(self) -> None:
        pass


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


class SubmititLaunch(Launch):
    """One submitit job per run (see :func:`launch_submitit`)."""

    def __init__(self, configs: Sequence[RunConfig], out: str | Path, executor: Any) -> None:
        super().__init__(configs, out)
        self.jobs = {}
        for config, run_dir in zip(configs, self.run_dirs):
            job = executor.submit(TrainJob(config.to_dict(), str(out)))
            mark_queued(run_dir, "submitit", folder=str(Path(executor.folder).resolve()), job_id=str(job.job_id))
            self.jobs[config.run_name()] = job

    @property
    def job_ids(self) -> dict[str, str]:
        return {name: str(job.job_id) for name, job in self.jobs.items()}

    def done(self) -> bool:
        return all(job.done() for job in self.jobs.values())

    def wait(self) -> dict[str, Any]:
        try:
            return {name: job.result() for name, job in self.jobs.items()}
        finally:
            self._forget()

    def cancel(self) -> None:
        for job in self.jobs.values():
            if not job.done():
                job.cancel(check=False)
        self._forget()


def launch_submitit(configs: Sequence[RunConfig], out: str | Path, *, folder: str | Path = "runs/.submitit",
                    cluster: str | None = None, partition: str | None = None, time_minutes: int = 24 * 60,
                    gpus_per_job: int = 1, cpus_per_job: int | None = None,
                    wait: bool = True) -> dict[str, Any] | SubmititLaunch:
    """One submitit job per config (``cluster``: None = what submitit finds, ``slurm``, ``local``,
    ``debug``); returns ``{run name: status}`` when ``wait``, else the :class:`Launch` at once (its
    ``job_ids`` name the jobs)."""
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
    launched = SubmititLaunch(configs, out, executor)
    return launched.wait() if wait else launched


def launch(configs: Sequence[RunConfig], out: str | Path, launcher: str, *, jobs: int = 1,
           devices: Sequence[str] | None = None, threads: int | None = None, wait: bool = True,
           **submitit_options: Any) -> dict[str, Any] | Launch:
    """:func:`launch_local` or :func:`launch_submitit` by name (``launcher`` in :data:`LAUNCHERS`)."""
    if launcher == "local":
        if submitit_options:
            raise ValueError(f"launcher 'local' takes no {', '.join(sorted(submitit_options))}")
        return launch_local(configs, out, jobs, devices=devices, threads=threads, wait=wait)
    if launcher == "submitit":
        return launch_submitit(configs, out, folder=submitit_options.pop("folder", Path(out) / ".submitit"),
                               wait=wait, **submitit_options)
    raise ValueError(f"launcher: {launcher!r} is invalid; valid choices: {', '.join(LAUNCHERS)}")
