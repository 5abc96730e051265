"""Slim copies of finished runs: what a figure needs to be redrawn, without the checkpoints.

The run store (``runs/``) holds checkpoints and is not versioned, so a fresh clone or a fresh
machine has none of the runs behind the committed figures, and every artifact that shares them
would train them again. An *archive* folder holds, per finished run (completed or diverged), every
file of its run folder except the checkpoints (``*.pt``): ``config.json``, ``history.csv``, the
side tables, the cached checkpoint diagnostics and a ``meta.json`` whose digests cover exactly
those files and whose ``archived`` entry records the checkpoint's size and SHA-256. A run of the
CPU scale is about 20 kB there.

:func:`restore_run` copies an archived run into a run store where that run is missing; the store
then serves it like any finished run (its files verified against ``meta.json``), so ``reproduce``
trains nothing for it. What needs the weights (robust evaluation, diagnostics not cached in the
archive, resuming) is refused for such a run, naming the remedy: train it again.
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import RunStoreError
from ..runs import (ARCHIVED_KEY, CHECKPOINT_FILE, CONFIG_FILE, FINAL_STATUSES, LOCK_FILE, META_FILE, OWNER_FILE,
                    RunResult, file_digest, is_running, load_run, read_json, run_dir_for, write_json)

__all__ = ["ARCHIVED_KEY", "archive_run", "archived_copy", "has_weights", "is_archived", "restore_run"]

# ARCHIVED_KEY: the meta.json entry of an archived run, {"checkpoints": {name: digest}, "date": ...}


def _kept(path: Path) -> bool:
    """A file an archive keeps: not a checkpoint, not the lock or its owner, not a temporary file."""
    return (path.is_file() and path.suffix != ".pt" and path.name not in (LOCK_FILE, OWNER_FILE)
            and not (path.name.startswith(".") and path.name.endswith(".tmp")))


def has_weights(run_dir: str | Path) -> bool:
    """Whether the run folder holds a finished run with its checkpoint (what evaluation and the
    diagnostics of stored runs load; an archived run has none)."""
    run_dir = Path(run_dir)
    try:
        run = load_run(run_dir, verify="none")
    except (RunStoreError, OSError, ValueError):
        return False
    return run.status in FINAL_STATUSES and (run_dir / CHECKPOINT_FILE).is_file()


def is_archived(run: RunResult) -> bool:
    """Whether ``run`` was restored from an archive (it has no checkpoint)."""
    return ARCHIVED_KEY in run.meta


def archive_run(run_dir: str | Path, archive: str | Path) -> Path:
    """Write the slim copy of the finished run in ``run_dir`` to ``archive/<run name>/`` (replacing
    an older copy) and return its folder. Refused for a run that is not finished or is damaged."""
    run_dir = Path(run_dir)
    if is_running(run_dir):
        raise RunStoreError(f"{run_dir} is being trained; archive it once it has finished")
    run = load_run(run_dir, verify="full")  # a damaged run is refused here, naming the file
    if run.status not in FINAL_STATUSES:
        raise RunStoreError(f"{run_dir} is {run.status}: only finished runs (completed or diverged) are archived; "
                            f"train it to the end first")
    archive = Path(archive).expanduser()
    blocking = next((folder for folder in (archive, *archive.parents) if folder.exists() and not folder.is_dir()), None)
    if blocking is not None:
        raise RunStoreError(f"the archive folder {archive} cannot be made: {blocking} is a file; "
                            f"name a folder (or a path that does not exist yet)")
    archive.mkdir(parents=True, exist_ok=True)
    target = archive / run_dir.name
    staging = Path(tempfile.mkdtemp(dir=archive, prefix=f".{run_dir.name}.", suffix=".tmp"))
    try:
        kept = {}
        for path in sorted(run_dir.iterdir()):
            if _kept(path) and path.name != META_FILE:
                shutil.copy2(path, staging / path.name)
                kept[path.name] = file_digest(staging / path.name)
        meta = dict(run.meta)
        recorded = meta.get("files", {})
        meta["files"] = {name: digest for name, digest in recorded.items() if name in kept}
        checkpoints = ({name: digest for name, digest in recorded.items() if name.endswith(".pt")}
                       or run.meta.get(ARCHIVED_KEY, {}).get("checkpoints", {}))  # a restored run keeps its record
        meta[ARCHIVED_KEY] = {"checkpoints": checkpoints,
                              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        if _same_copy(target, kept, meta):  # archiving again changes nothing (no new date to commit)
            shutil.rmtree(staging)
            return target
        write_json(staging / META_FILE, meta)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _same_copy(target: Path, files: dict[str, object], meta: dict) -> bool:
    """Whether ``target`` already is the archived copy of these files (name: digest) and this
    meta.json, up to the archive date."""
    try:
        held = read_json(target / META_FILE)
        names = {path.name for path in target.iterdir()}
    except (OSError, ValueError):
        return False

    def undated(entry: dict) -> dict:
        return {**entry, ARCHIVED_KEY: {**entry.get(ARCHIVED_KEY, {}), "date": None}}

    return (names == {META_FILE, *files} and undated(held) == undated(meta)
            and all(file_digest(target / name) == digest for name, digest in files.items()))


def archived_copy(config, archive: str | Path | None) -> Path | None:
    """The archive's folder of ``config``'s run, or None when the archive has none."""
    if archive is None:
        return None
    folder = run_dir_for(config, archive)
    return folder if (folder / META_FILE).is_file() and (folder / CONFIG_FILE).is_file() else None


def restore_run(archived: str | Path, out: str | Path) -> RunResult:
    """Copy the archived run folder ``archived`` into the run store ``out`` and return the run as the
    store now serves it. Refused when the archived copy is damaged or not a finished run, and when
    ``out`` already has a folder for that run (a stored run is never overwritten)."""
    archived = Path(archived)
    run = load_run(archived, verify="full")
    if run.status not in FINAL_STATUSES or ARCHIVED_KEY not in run.meta:
        raise RunStoreError(f"{archived} is not an archived finished run (status {run.status}); "
                            f"archive a run with agent-lab archive")
    target = run_dir_for(run.config, out)
    if target.name != archived.name:
        raise RunStoreError(f"{archived} holds the run {target.name}, not {archived.name}: the folder was "
                            f"renamed or its config.json edited; archive the run again")
    if target.exists():
        raise RunStoreError(f"{target} exists already; a stored run is never overwritten by its archived copy")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        for path in archived.iterdir():
            if _kept(path):
                shutil.copy2(path, staging / path.name)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / META_FILE).exists():
            raise
        # another process restored the same run a moment ago: serve its copy
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_run(target, verify="full")
