"""Run store: one folder per run, named after the config hash, cached, resumable and verifiable.

A run folder holds ``config.json``, ``history.csv``, ``meta.json``, ``checkpoint.pt`` and the side
tables of the run's callbacks (``layer_density.csv``, ...). Every file is written atomically
(temporary file in the same folder, then rename), so a run killed at any moment leaves either the
previous or the new version of each file, never half of one.

The store can prove its files: after every save ``meta.json`` records the size and SHA-256 of the
checkpoint, the history and the side tables, and a run is served only when its files match. The
checkpoint is the source of truth: it holds the history and the side tables too, so a damaged
history or side table is rewritten from it (:func:`repair_run`); a damaged checkpoint means the run
must start over. One process at a time trains in a run folder (:class:`RunLock`).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy
import pandas as pd
import torch
import torchvision
from filelock import FileLock, Timeout

from ._version import __version__
from .build import model_from_checkpoint
from .config import RunConfig
from .errors import RunStoreError

STATUSES = ("running", "completed", "diverged", "interrupted")
FINAL_STATUSES = ("completed", "diverged")
CONFIG_FILE, HISTORY_FILE, META_FILE, CHECKPOINT_FILE = "config.json", "history.csv", "meta.json", "checkpoint.pt"
LOCK_FILE, OWNER_FILE = ".lock", "owner.json"
# meta.json entry of a run restored from an archive, which has no checkpoint (agent_lab.experiments.archive)
ARCHIVED_KEY = "archived"
# Columns every history has (callbacks add theirs, e.g. c, itop_rate, robust_acc).
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "wall_time",
                   "eval_time", "fwd_bwd", "density")
# Seconds between two heartbeats of a training process in ``owner.json``.
HEARTBEAT_EVERY = 30.0


class DamagedRunError(RunStoreError):
    """A file of a run folder does not match what ``meta.json`` recorded, or cannot be read.

    ``repairable`` is true when only files derived from the checkpoint are damaged, so that
    :func:`repair_run` (or resuming the run) rewrites them.
    """

    def __init__(self, message: str, repairable: bool = False):
        super().__init__(message)
        self.repairable = repairable


class RunLockedError(RunStoreError):
    """Another process trains in this run folder."""


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w") -> dict[str, Any]:
    """Write ``path`` through a temporary file and a rename; returns the new file's digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        digest = file_digest(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def file_digest(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            sha.update(chunk)
    return {"bytes": Path(path).stat().st_size, "sha256": sha.hexdigest()}


def remove_temporary_files(run_dir: Path) -> list[str]:
    """Delete the temporary files a killed writer left behind (call only while holding the run's lock)."""
    removed = []
    for leftover in Path(run_dir).glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
        removed.append(leftover.name)
    return removed


def write_json(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    return _atomic_write(path, lambda h: json.dump(payload, h, indent=2, sort_keys=True, default=str))


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def save_checkpoint(path: Path, state: dict[str, Any]) -> dict[str, Any]:
    return _atomic_write(path, lambda h: torch.save(state, h), mode="wb")


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint; an unreadable one raises :class:`DamagedRunError` naming the file."""
    # The checkpoint holds RNG states and python scalars besides tensors: full unpickling is needed
    # and is safe for checkpoints this library wrote itself.
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as error:  # truncated zip, bad pickle, wrong file: all mean "cannot be read"
        raise DamagedRunError(f"{path} cannot be read ({type(error).__name__}: {_first_line(error)}); "
                              f"the run must start over: train again with --no-resume (resume=False)") from None


def write_csv(path: Path, history: pd.DataFrame) -> dict[str, Any]:
    return _atomic_write(path, lambda h: history.to_csv(h, index=False))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no details"


def run_dir_for(config: RunConfig, out: str | Path) -> Path:
    return Path(out).expanduser() / config.run_name()


def check_out_folder(out: str | Path) -> Path:
    """``out`` as a path, refused in one line when it (or a folder above it) is not a folder."""
    out = Path(out).expanduser()
    for candidate in (out, *out.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise RunStoreError(f"out: {out} cannot hold run folders: {candidate} is a file, not a folder; "
                                    f"give a folder (it is created when missing)")
            if not os.access(candidate, os.W_OK | os.X_OK):
                raise RunStoreError(f"out: {out} cannot hold run folders: {candidate} is not writable; "
                                    f"give a folder you can write to")
            break
    return out


# -- locks -------------------------------------------------------------------------------------
def _lock_path(run_dir: Path) -> Path:
    return Path(run_dir) / LOCK_FILE


def run_owner(run_dir: str | Path) -> dict[str, Any]:
    """Who trains in ``run_dir`` (pid, host, start time, last heartbeat), as recorded in ``owner.json``."""
    try:
        return read_json(Path(run_dir) / OWNER_FILE)
    except (OSError, ValueError):
        return {}


def describe_owner(owner: dict[str, Any]) -> str:
    if not owner:
        return "another process"
    beat = time.time() - float(owner.get("heartbeat", owner.get("started", time.time())))
    return (f"pid {owner.get('pid', '?')} on {owner.get('host', '?')} (since {owner.get('started_at', '?')}, "
            f"last heartbeat {beat:.0f} s ago)")


def is_running(run_dir: str | Path) -> bool:
    """True while some process holds the run folder's lock (the OS releases it when that process dies)."""
    path = _lock_path(Path(run_dir))
    if not path.exists():
        return False
    probe = FileLock(path)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:  # a read-only store: nobody can be training in it
        return False
    probe.release()
    return False


# -- queue markers -----------------------------------------------------------------------------
# A launcher that hands a run to a worker or a cluster job leaves ``<out>/.queue/<run name>.json``
# until the run's trainer takes its lock, so that ``list`` and the panel can say "queued".
QUEUE_FOLDER = ".queue"


def queue_marker_path(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.parent / QUEUE_FOLDER / f"{run_dir.name}.json"


def mark_queued(run_dir: str | Path, launcher: str, **where: Any) -> None:
    """Record that ``launcher`` has queued the run of ``run_dir``: ``where`` says how to tell whether
    that queue entry still lives (``pid`` of a local worker pool, or the submitit ``folder`` and
    ``job_id``)."""
    path = queue_marker_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"launcher": launcher, "host": socket.gethostname(), "submitted": time.time(), **where})


def clear_queued(run_dir: str | Path) -> None:
    queue_marker_path(run_dir).unlink(missing_ok=True)


def queued_entry(run_dir: str | Path) -> dict[str, Any]:
    """The run's queue marker while it still stands for a live queue entry, else ``{}``.

    An entry is dead when the local pool that queued it is gone (its pid no longer runs on this
    host) or when its submitit job has left a result file (it ended without starting the run)."""
    try:
        entry = read_json(queue_marker_path(run_dir))
    except (OSError, ValueError):
        return {}
    if "pid" in entry and entry.get("host") == socket.gethostname() and not _pid_alive(int(entry["pid"])):
        return {}
    if "folder" in entry and "job_id" in entry and any(Path(entry["folder"]).glob(f"{entry['job_id']}_*_result.pkl")):
        return {}
    return entry


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class RunLock:
    """The exclusive right to write a run folder, held for as long as a process trains in it.

    A file lock (``.lock``; the operating system releases it when the holder dies, even by kill -9)
    plus ``owner.json`` naming the holder, with a heartbeat refreshed every ``HEARTBEAT_EVERY``
    seconds by a background thread. ``timeout=None`` waits as long as it takes, ``0`` refuses at
    once; either way the caller is told who holds the lock.
    """

    def __init__(self, run_dir: str | Path, heartbeat_every: float = HEARTBEAT_EVERY):
        self.run_dir = Path(run_dir)
        self.heartbeat_every = heartbeat_every
        self._lock: FileLock | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._owner: dict[str, Any] = {}

    def acquire(self, timeout: float | None = None, notify: Callable[[str], None] | None = print) -> "RunLock":
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunStoreError(f"cannot create the run folder {self.run_dir}: {error.strerror or error}") from None
        lock = FileLock(_lock_path(self.run_dir))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = describe_owner(run_owner(self.run_dir))
            if timeout == 0:
                raise RunLockedError(f"{self.run_dir} is in use: {holder} trains this config; wait for it, "
                                     f"or give a lock timeout to wait") from None
            if notify is not None:
                notify(f"{self.run_dir.name}: {holder} trains this config; waiting for it to finish")
            try:
                lock.acquire(timeout=-1 if timeout is None else timeout)
            except Timeout:
                raise RunLockedError(f"{self.run_dir} is still in use after {timeout:g} s: "
                                     f"{describe_owner(run_owner(self.run_dir))} trains this config") from None
        self._lock = lock
        clear_queued(self.run_dir)  # the run has left its launcher's queue
        now = time.time()
        self._owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": now,
                       "started_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))}
        self.beat()
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name=f"heartbeat {self.run_dir.name}", daemon=True)
        self._thread.start()
        return self

    def beat(self) -> None:
        """Record that the holder is alive now."""
        write_json(self.run_dir / OWNER_FILE, {**self._owner, "heartbeat": time.time()})

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_every):
            try:
                self.beat()
            except OSError:  # a full or vanished disk must not kill training from this thread
                pass

    def release(self) -> None:
        if self._lock is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        (self.run_dir / OWNER_FILE).unlink(missing_ok=True)
        self._lock.release()
        self._lock = None


def environment_info(device: torch.device) -> dict[str, Any]:
    """Versions, device and numeric-precision flags that can change results."""
    info: dict[str, Any] = {
        "agent_lab": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
        "torchvision": torchvision.__version__, "numpy": numpy.__version__, "platform": platform.platform(),
        "host": socket.gethostname(), "device": str(device), "torch_num_threads": torch.get_num_threads(),
        "precision": {
            "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "default_dtype": str(torch.get_default_dtype()),
        },
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


@dataclass
class RunResult:
    """What a run produced: its config, per-epoch history, status and folder."""

    config: RunConfig
    run_dir: Path
    history: pd.DataFrame
    status: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> pd.Series:
        """The last history row (the final epoch's metrics)."""
        return self.history.iloc[-1]

    def load_model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The model with the weights of the last checkpoint, in eval mode."""
        checkpoint = load_checkpoint(self.run_dir / CHECKPOINT_FILE, map_location=device)
        return model_from_checkpoint(self.config, checkpoint, device)


def _remedy(run_dir: Path, repairable: bool) -> str:
    if repairable:
        return (f"rewrite it from {CHECKPOINT_FILE} with `agent-lab repair --run {run_dir}` (or train the config "
                f"again, which resumes and repairs), or start over with --no-resume (resume=False)")
    return "the run must start over: train again with --no-resume (resume=False)"


def verify_files(run_dir: str | Path, meta: dict[str, Any], full: bool = True) -> None:
    """Check the files of a run against the sizes and SHA-256 recorded in ``meta``.

    ``full=False`` compares the checkpoint's size only (hashing a large checkpoint takes a while;
    the small files are always hashed). Raises :class:`DamagedRunError` naming the first bad file.
    """
    run_dir = Path(run_dir)
    recorded = meta.get("files", {})
    damaged: list[tuple[str, str]] = []
    for name, digest in sorted(recorded.items(), key=lambda item: item[0] != CHECKPOINT_FILE):
        path = run_dir / name
        if not path.exists():
            damaged.append((name, "it is missing"))
            continue
        size = path.stat().st_size
        if size != digest["bytes"]:
            damaged.append((name, f"it has {size} bytes, meta.json records {digest['bytes']}"))
        elif (full or name != CHECKPOINT_FILE) and file_digest(path)["sha256"] != digest["sha256"]:
            damaged.append((name, "its content differs from the SHA-256 recorded in meta.json"))
    if damaged:
        repairable = all(name != CHECKPOINT_FILE for name, _ in damaged)
        name, reason = damaged[0]
        others = f" (also damaged: {', '.join(n for n, _ in damaged[1:])})" if len(damaged) > 1 else ""
        raise DamagedRunError(f"{run_dir / name} is damaged: {reason}{others}; {_remedy(run_dir, repairable)}",
                              repairable=repairable)


def _read_meta(run_dir: Path) -> dict[str, Any]:
    path = run_dir / META_FILE
    if not path.exists():
        return {}
    try:
        meta = read_json(path)
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        return meta
    except (OSError, ValueError) as error:
        raise DamagedRunError(f"{path} cannot be read ({_first_line(error)}); {_remedy(run_dir, True)}",
                              repairable=True) from None


def _read_history(run_dir: Path) -> pd.DataFrame:
    path = run_dir / HISTORY_FILE
    if not path.exists():
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as error:  # pandas' parser errors are ValueErrors
        raise DamagedRunError(f"{path} cannot be read ({_first_line(error)}); {_remedy(run_dir, True)}",
                              repairable=True) from None


def _read_config(run_dir: Path) -> RunConfig:
    path = run_dir / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {CONFIG_FILE} is missing")
    try:
        return RunConfig.from_dict(read_json(path))
    except (OSError, ValueError) as error:  # ConfigError is a ValueError
        raise DamagedRunError(f"{path} cannot be read ({_first_line(error)}); the run folder cannot be "
                              f"identified: delete it and train the config again") from None


def load_run(run_dir: str | Path, verify: str = "quick") -> RunResult:
    """Read a run folder written by :func:`agent_lab.train`.

    The status is ``running`` while a process holds the folder's lock, ``interrupted`` when the
    process that wrote it is gone. A finished run (completed or diverged) is checked against the
    sizes and SHA-256 recorded in ``meta.json``: ``verify="full"`` hashes the checkpoint too,
    ``"quick"`` compares its size, ``"none"`` skips the check. A mismatch raises
    :class:`DamagedRunError` naming the file and the remedy.
    """
    if verify not in ("full", "quick", "none"):
        raise ValueError(f"load_run: verify={verify!r} is invalid; valid choices: full, quick, none")
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    meta = _read_meta(run_dir)
    history = _read_history(run_dir)
    status = meta.get("status", "interrupted")
    if status == "running" and not is_running(run_dir):  # the process that wrote it is gone
        status = "interrupted"
    if status in FINAL_STATUSES and verify != "none":
        verify_files(run_dir, meta, full=verify == "full")
        if "files" not in meta and status == "completed" and len(history) != config.epochs:
            # a folder written before the store recorded checksums: the row count is all there is to check
            raise DamagedRunError(f"{run_dir / HISTORY_FILE} is damaged: it has {len(history)} rows for a completed "
                                  f"run of {config.epochs} epochs; {_remedy(run_dir, True)}", repairable=True)
    return RunResult(config=config, run_dir=run_dir, history=history, status=status, meta=meta)


def history_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The history table of a run from its rows (the columns of an empty history are still there)."""
    return pd.DataFrame(rows, columns=None if rows else list(HISTORY_COLUMNS))


def repair_run(run_dir: str | Path) -> RunResult:
    """Rewrite a run's history, side tables and ``meta.json`` from its checkpoint.

    Refused (:class:`DamagedRunError`) when the checkpoint itself is damaged or unreadable, and
    (:class:`RunLockedError`) while a process trains in the folder. A run that diverged in its
    first epoch has no checkpoint: its history is the diverging row kept in ``meta.json``.
    """
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    with RunFolder(run_dir).open(timeout=0, notify=None) as folder:
        try:
            folder.meta = _read_meta(run_dir)
        except DamagedRunError:
            folder.meta = {}
        status, path = folder.meta.get("status"), run_dir / CHECKPOINT_FILE
        if path.exists():
            folder.adopt(CHECKPOINT_FILE)
            recorded = folder.meta.get("files", {}).get(CHECKPOINT_FILE)
            if recorded is not None and status in FINAL_STATUSES and folder.files[CHECKPOINT_FILE] != recorded:
                raise DamagedRunError(f"{path} is damaged: it does not match the size and SHA-256 recorded in "
                                      f"meta.json; {_remedy(run_dir, False)}")
            checkpoint = load_checkpoint(path)
        elif status == "diverged" and folder.meta.get("epochs_done") == 0:
            checkpoint = {"state": {"epoch": 0, "history": []}}
        else:
            raise DamagedRunError(f"{path} is missing; {_remedy(run_dir, False)}")
        state, history = checkpoint["state"], list(checkpoint["state"]["history"])
        if status == "diverged" and folder.meta.get("diverged_row"):  # the diverging epoch is not in the checkpoint
            history.append(dict(folder.meta["diverged_row"]))  # stored as [column, value] pairs, in order
        elif status not in FINAL_STATUSES:
            status = "completed" if state["epoch"] >= config.epochs else "interrupted"
        folder.save(status, history=history_frame(history),
                    tables={name: pd.DataFrame(records) for name, records in checkpoint.get("tables", {}).items()},
                    epochs_done=state["epoch"], repaired_at=time.strftime("%Y-%m-%d %H:%M:%S"),
                    config_hash=config.config_hash())
    return load_run(run_dir, verify="none")


class RunFolder:
    """The writer of one run folder, used by the training loop and by HYDRA alike.

    The sequence: :meth:`served` (a finished run, verified, repaired from its checkpoint when only
    derived files are damaged) or :meth:`open` (take the lock, drop a killed writer's temporary
    files); then :meth:`start_over` or resume; :meth:`begin` (``config.json`` and a running
    ``meta.json``); :meth:`save` after every epoch and once at the end. A save writes the checkpoint
    first, then the history and the side tables, then ``meta.json`` with the size and SHA-256 of
    every file (the commit point), and beats the lock's heartbeat.
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir)
        self.meta: dict[str, Any] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.lock: RunLock | None = None

    def served(self) -> RunResult | None:
        """The stored result of a finished run (its files verified), else None (train or resume it)."""
        if not (self.path / META_FILE).exists():
            return None
        try:
            cached = load_run(self.path, verify="full")
        except DamagedRunError as error:
            if not error.repairable:
                raise
            if not (self.path / CHECKPOINT_FILE).exists():
                return None
            print(f"{str(error).split(';')[0]}; rewriting it from {CHECKPOINT_FILE}")
            cached = repair_run(self.path)
        return cached if cached.status in FINAL_STATUSES else None

    def open(self, timeout: float | None = None, notify: Callable[[str], None] | None = print) -> "RunFolder":
        """Take the folder's lock (see :class:`RunLock`) and remove a killed writer's temporary files."""
        self.lock = RunLock(self.path).acquire(timeout=timeout, notify=notify)
        remove_temporary_files(self.path)
        return self

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start_over(self) -> None:
        """Delete every file of an earlier attempt (the lock stays)."""
        for path in self.path.iterdir():
            if path.is_file() and path.name not in (LOCK_FILE, OWNER_FILE):
                path.unlink()
        self.files = {}

    def adopt(self, name: str) -> None:
        """Record the digest of an existing file (a checkpoint a resumed run starts from)."""
        self.files[name] = file_digest(self.path / name)

    def begin(self, config: dict[str, Any], meta: dict[str, Any]) -> None:
        """Write ``config.json`` and a ``meta.json`` that says the run is running."""
        write_json(self.path / CONFIG_FILE, config)
        self.meta = {**meta, "status": "running"}
        self._commit()

    def _commit(self) -> None:
        """Write ``meta.json`` with the digests of the files saved so far (the commit point of a save)."""
        self.meta["files"] = dict(self.files)
        write_json(self.path / META_FILE, self.meta)

    def save(self, status: str = "running", *, checkpoint: dict[str, Any] | None = None,
             checkpoint_file: str = CHECKPOINT_FILE, history: pd.DataFrame | None = None,
             tables: dict[str, pd.DataFrame] | None = None, **meta: Any) -> None:
        """Write what is given, in the order of the class docstring, then commit ``meta.json``."""
        if checkpoint is not None:
            self.files[checkpoint_file] = save_checkpoint(self.path / checkpoint_file, checkpoint)
        if history is not None:
            self.files[HISTORY_FILE] = write_csv(self.path / HISTORY_FILE, history)
        for name, table in (tables or {}).items():
            self.files[f"{name}.csv"] = write_csv(self.path / f"{name}.csv", table)
        self.meta.update(meta, status=status)
        self._commit()
        if self.lock is not None:
            self.lock.beat()


def list_runs(out: str | Path) -> pd.DataFrame:
    """One row per run folder under ``out``: status, epochs done, the final metrics, and any damage.

    A run being trained shows as ``running`` with the age of its last heartbeat; a run whose files
    do not match ``meta.json`` shows as ``damaged`` with the problem in ``problem``; ``archived`` is
    true for a run restored from an archive (no checkpoint).
    """
    rows = []
    for config_path in sorted(Path(out).expanduser().glob(f"*/{CONFIG_FILE}")):
        run_dir = config_path.parent
        try:
            if "hydra" in read_json(config_path):  # a multi-phase HYDRA folder (experiments.hydra), not one run
                continue
            run = load_run(run_dir)
        except (DamagedRunError, ValueError, OSError) as error:
            rows.append({"run": run_dir.name, "status": "damaged", "problem": str(error)})
            continue
        row = {"run": run.run_dir.name, "status": run.status, "archived": ARCHIVED_KEY in run.meta,
               **run.config.to_dict()}
        if run.status == "running":
            owner = run_owner(run_dir)
            if "heartbeat" in owner:
                row["heartbeat_age"] = time.time() - float(owner["heartbeat"])
        if len(run.history):
            row.update({k: run.final[k] for k in ("epoch", "test_acc", "wall_time", "fwd_bwd") if k in run.history})
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in ("epoch", "fwd_bwd"):  # whole numbers, also beside damaged runs' empty cells
        if column in table:
            table[column] = table[column].astype("Int64")
    return table
