"""The package's layering (pyproject.toml, [tool.importlinter]) holds, and covers every module."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs tomllib (3.11+) or tomli")

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
needs_linter = pytest.mark.skipif(LINT is None, reason="import-linter is not installed (it comes with the dev extra)")


def _layers() -> list[str]:
    (contract,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return [name.strip() for layer in contract["layers"] for name in layer.split("|")]


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([LINT, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_every_module_of_the_package_has_a_layer():
    modules = {p.stem for p in (ROOT / "agent_lab").glob("*.py") if p.name != "__init__.py"}
    packages = {p.parent.name for p in (ROOT / "agent_lab").glob("*/__init__.py")}
    assert modules | packages == set(_layers())


@needs_linter
def test_every_import_points_down():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 kept, 0 broken" in result.stdout


@needs_linter
def test_an_import_that_points_up_fails_and_is_named(tmp_path):
    shutil.copytree(ROOT / "agent_lab", tmp_path / "agent_lab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    hooks = tmp_path / "agent_lab" / "hooks.py"
    hooks.write_text(hooks.read_text() + "\nfrom .train import Trainer  # noqa: E402,F401\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "agent_lab.hooks -> agent_lab.train" in result.stdout


def test_config_choices_come_from_the_registries():
    from agent_lab.adversarial import EVAL_ATTACKS
    from agent_lab.config import CHOICES
    from agent_lab.diagnostics.in_training import DIAGNOSTICS
    from agent_lab.optim.agent import COEFFICIENT_RULES
    from agent_lab.sparse.engine import GROWTH_MODES
    from agent_lab.sparse.pipelines import DEFAULTS

    assert CHOICES["growth"] == tuple(GROWTH_MODES)
    assert CHOICES["coef_rule"] == tuple(COEFFICIENT_RULES)
    assert CHOICES["pipeline"] == ("dense", *DEFAULTS)
    assert CHOICES["robust_eval"] == ("none", *EVAL_ATTACKS)
    assert CHOICES["diagnostics"] == DIAGNOSTICS
