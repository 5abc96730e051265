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
    from agent_lab.adversarial import EVAL_ATTACKS, OBJECTIVES
    from agent_lab.optim.correction import CORRECTOR_RULES, OPTIMIZERS
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
    assert CHOICES["adversarial"] == tuple(OBJECTIVES)
    assert CHOICES["optimizer"] == OPTIMIZERS and set(CORRECTOR_RULES) <= set(OPTIMIZERS)


def test_a_new_growth_mode_and_coefficient_rule_are_one_registration_each(monkeypatch, tmp_path):
    """The contributor notes' example: entries of the registries become config choices that train."""
    from agent_lab import RunConfig, train
    from agent_lab.optim.agent import COEFFICIENT_RULES
    from agent_lab.sparse.engine import GROWTH_MODES, GrowthMode

    calls = []

    def saliency(sparsifier, name, weight):
        calls.append(name)
        return sparsifier._scores[name] * weight.abs()

    monkeypatch.setitem(GROWTH_MODES, "saliency", GrowthMode(saliency, gradient="dense"))
    monkeypatch.setitem(COEFFICIENT_RULES, "half-agent", lambda corrector: 0.5 * corrector.gamma * corrector.c_hat)
    # CHOICES is read from the registries when the package is imported; an entry written in the
    # registry's literal is there already, one added at run time is registered like this:
    from agent_lab import config as config_module
    monkeypatch.setitem(config_module.CHOICES, "growth", tuple(GROWTH_MODES))
    monkeypatch.setitem(config_module.CHOICES, "coef_rule", tuple(COEFFICIENT_RULES))

    config = RunConfig(dataset="synthetic", width=0.125, epochs=2, batch_size=64, pipeline="rigl", sparsity=0.9,
                       update_every=4, growth="saliency", optimizer="agent", coef_rule="half-agent", device="cpu")
    result = train(config, out=tmp_path, progress=False)
    assert result.status == "completed" and calls  # the mode scored the growth
    final = result.history.iloc[-1]
    assert final["c"] == pytest.approx(0.5 * config.gamma * final["c_hat_ema"])
