"""Where data files live: the bundled data folder and the download/cache root.

The environment variable ``AGENT_LAB_DATA`` overrides both locations.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "AGENT_LAB_DATA"

#: The repository's ``data/`` folder, which ships ``cifar10-mini.npz``.
REPO_DATA_DIR = Path(__file__).resolve().parents[2] / "data"

DEFAULT_ROOT = Path("~/.cache/agent_lab/data")


def env_data_dir() -> Path | None:
    """The folder named by ``$AGENT_LAB_DATA``, or None when it is unset or empty."""
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else None


def bundled_search_dirs() -> list[Path]:
    """Folders searched for bundled files, in order: ``$AGENT_LAB_DATA``, then the repo's ``data/``."""
    override = env_data_dir()
    return [override, REPO_DATA_DIR] if override is not None else [REPO_DATA_DIR]


def default_root() -> Path:
    """Root for downloaded data sets: ``$AGENT_LAB_DATA`` or ``~/.cache/agent_lab/data``."""
    override = env_data_dir()
    return override if override is not None else DEFAULT_ROOT.expanduser()


def decoded_cache_dir() -> Path:
    """Folder for decoded-tensor caches of image archives."""
    return default_root() / "decoded"
