"""A newcomer can install JupyterLab through the `lab` extra and open the notebooks."""
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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
    # not part of dev: torchattacks (dev's PGD cross-check) pins requests~=2.25.1, JupyterLab needs >= 2.31
    assert "jupyterlab" not in _requirement_names(project["optional-dependencies"]["dev"])
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
def test_jupyter_lab_serves_the_notebooks(tmp_path):
    """`jupyter lab notebooks/` as the README says, headless: the server starts and lists the notebooks."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    jupyter = Path(sys.executable).with_name("jupyter")
    command = [str(jupyter) if jupyter.exists() else sys.executable, *([] if jupyter.exists() else ["-m", "jupyter"]),
               "lab", "--no-browser", f"--port={port}", "--ServerApp.token=", "--ServerApp.password=",
               "--allow-root", f"--ServerApp.root_dir={ROOT}"]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.time() + 120
        while True:
            assert server.poll() is None, server.communicate()[0][-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/notebooks", timeout=5) as reply:
                    listing = json.load(reply)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.time() < deadline, "jupyter lab did not answer within 120 s"
                time.sleep(0.5)
        assert {item["name"] for item in listing["content"]} >= {path.name for path in NOTEBOOKS}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=10) as reply:
            assert reply.status == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def test_the_readme_gallery_shows_committed_cpu_figures():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Gallery"):readme.index("## Use")]
    images = re.findall(r'<img src="([^"]+)"', section)
    assert len(images) >= 4
    for image in images:
        assert image.startswith("figures/") and image.endswith("_cpu.png") and (ROOT / image).is_file(), image
        assert (ROOT / image).parent.joinpath("SOURCES.json").is_file()
