"""A newcomer can install JupyterLab through the `lab` extra and open the notebooks."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs tomllib (3.11+) or tomli")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _requirement_names(requirements):
    return {re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_lab_extra_installs_jupyterlab_and_a_kernel():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lab = _requirement_names(project["optional-dependencies"]["lab"])
    assert {"jupyterlab", "ipykernel"} <= lab
    assert "agent-lab[lab]" in project["optional-dependencies"]["dev"]  # CI (.[dev]) checks that it starts
    assert "ipywidgets" in _requirement_names(project["dependencies"])  # the panels render in JupyterLab


def test_readme_says_how_to_open_the_notebooks():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Open the notebooks\n(.*?)(?=^## )", readme, flags=re.M | re.S)
    assert match, "README.md needs a section '## Open the notebooks'"
    section = match.group(1)
    assert 'pip install -e ".[lab]"' in section and "jupyter lab notebooks/" in section
    assert "AGENT_LAB_SCALE" in section
    for notebook in NOTEBOOKS:
        assert notebook.name in section, f"the section does not say what {notebook.name} does"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_valid_nbformat_4_without_stored_outputs(path):
    nbformat = pytest.importorskip("nbformat", reason="nbformat comes with the dev and lab extras")
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    assert nb.nbformat == 4
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "clear outputs before committing"


@pytest.mark.skipif(importlib.util.find_spec("jupyterlab") is None,
                    reason="jupyterlab is not installed (it comes with the lab extra: pip install -e '.[lab]')")
def test_jupyter_lab_runs():
    jupyter = Path(sys.executable).with_name("jupyter")
    command = [str(jupyter), "lab", "--version"] if jupyter.exists() else [sys.executable, "-m", "jupyterlab",
                                                                             "--version"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", result.stdout.strip())
