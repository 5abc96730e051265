"""Run store: one folder per run, named after the config hash, cached and resumable.

A run folder holds ``config.json``, ``history.csv``, ``meta.json`` and ``checkpoint.pt``. Every
file is written atomically (temporary file in the same folder, then rename), so a run killed at
any moment leaves either the previous or the new version of each file, never half of one.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from .config import RunConfig

STATUSES = ("running", "completed", "diverged", "interrupted")
CONFIG_FILE, HISTORY_FILE, META_FILE, CHECKPOINT_FILE = "config.json", "history.csv", "meta.json", "checkpoint.pt"


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: dict[str, Any]) -> None:
    _atomic_write(path, lambda h: json.dump(payload, h, indent=2, sort_keys=True, default=str))


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    _atomic_write(path, lambda h: torch.save(state, h), mode="wb")


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    # The checkpoint holds RNG states and python scalars besides tensors: full unpickling is needed
    # and is safe for checkpoints this library wrote itself.
    return torch.load(path, map_location=map_location, weights_only=False)


def write_csv(path: Path, history: pd.DataFrame) -> None:
    _atomic_write(path, lambda h: history.to_csv(h, index=False))


def run_dir_for(config: RunConfig, out: str | Path) -> Path:
    return Path(out).expanduser() / config.run_name()


def environment_info(device: torch.device) -> dict[str, Any]:
    """Versions, device and numeric-precision flags that can change results."""
    import numpy
    import torchvision

    from . import __version__

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
        from .train import build_model_for

        checkpoint = load_checkpoint(self.run_dir / CHECKPOINT_FILE, map_location=device)
        model = build_model_for(self.config, checkpoint["data_info"])
        model.load_state_dict(checkpoint["model"])
        return model.to(device).eval()


def load_run(run_dir: str | Path) -> RunResult:
    """Read a run folder written by :func:`agent_lab.train`."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {CONFIG_FILE} is missing")
    config = RunConfig.from_dict(read_json(run_dir / CONFIG_FILE))
    meta = read_json(run_dir / META_FILE) if (run_dir / META_FILE).exists() else {}
    history = pd.read_csv(run_dir / HISTORY_FILE) if (run_dir / HISTORY_FILE).exists() else pd.DataFrame()
    status = meta.get("status", "interrupted")
    if status == "running":  # the process that wrote it is gone
        status = "interrupted"
    return RunResult(config=config, run_dir=run_dir, history=history, status=status, meta=meta)


def list_runs(out: str | Path) -> pd.DataFrame:
    """One row per run folder under ``out``: status, epochs done and the final metrics."""
    rows = []
    for config_path in sorted(Path(out).expanduser().glob(f"*/{CONFIG_FILE}")):
        if "hydra" in read_json(config_path):  # a multi-phase HYDRA folder (adversarial.hydra), not one run
            continue
        run = load_run(config_path.parent)
        row = {"run": run.run_dir.name, "status": run.status, **run.config.to_dict()}
        if len(run.history):
            row.update({k: run.final[k] for k in ("epoch", "test_acc", "wall_time", "fwd_bwd") if k in run.history})
        rows.append(row)
    return pd.DataFrame(rows)
