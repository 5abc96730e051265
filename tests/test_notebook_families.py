"""The notebooks: one per family of the paper's artifacts, a papermill parameters cell each, the
families covering all 35 artifacts, and the project's runs/ and figures/ found from notebooks/."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from agent_lab.paper import ARTIFACTS
from agent_lab.paper.families import FAMILIES, family_artifacts
from agent_lab.paper.scales import get_scale
from agent_lab.reporting import project_folder

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FAMILY_NOTEBOOKS = {"bsr": "01_bsr_net", "itop": "02_itop", "rigl": "03_rigl", "diagnostics": "04_diagnostics"}


def test_the_families_cover_every_artifact_and_the_issue_s_grouping():
    covered = {artifact for family in FAMILIES.values() for artifact in family.ids}
    assert covered == set(ARTIFACTS)
    assert FAMILIES["rigl"].ids == ("table2", "fig25", "fig26")
    assert set(FAMILIES["diagnostics"].ids) == {"fig1", "fig2", "fig26", "table7"}
    assert {"table4", "table8", "fig3", "fig5", "fig6", "fig15", "fig27"} == set(FAMILIES["itop"].ids)
    for family in FAMILIES.values():
        assert set(family.smoke) <= set(family.ids)


def test_family_artifacts_per_scale():
    cpu = get_scale("cpu")
    assert family_artifacts("bsr", "smoke") == ["fig7", "fig17"]
    bsr_cpu = family_artifacts("bsr", "cpu")
    assert "table1" in bsr_cpu and "table3" not in bsr_cpu  # SVHN/TRADES: no runs at the cpu scale
    assert all(ARTIFACTS[a].arms_at(cpu) for a in bsr_cpu)
    assert family_artifacts("rigl", "paper") == ["table2", "fig25", "fig26"]
    with pytest.raises(ValueError, match="family: 'set' is invalid; valid choices: bsr, itop, rigl, diagnostics"):
        family_artifacts("set", "cpu")
    # a notebook's ARTIFACTS parameter: a list, or the string papermill -p passes
    assert family_artifacts("bsr", "cpu", chosen=["fig7"]) == ["fig7"]
    assert family_artifacts("bsr", "cpu", chosen="table5, fig7") == ["table5", "fig7"]
    with pytest.raises(ValueError, match="artifacts: fig99 invalid"):
        family_artifacts("bsr", "cpu", chosen="fig99")


def test_project_folder_is_found_from_the_notebooks_folder_and_falls_back_to_the_start(tmp_path):
    assert project_folder("runs", ROOT / "notebooks") == ROOT / "runs"
    assert project_folder("figures", ROOT) == ROOT / "figures"
    assert project_folder("runs", tmp_path) == tmp_path / "runs"


def test_at_least_six_notebooks_one_per_family_and_an_explorer():
    names = {path.stem for path in NOTEBOOKS}
    assert len(names) >= 6 and set(FAMILY_NOTEBOOKS.values()) <= names
    assert {"00_quickstart", "05_adversarial_evaluation", "06_explorer"} <= names
    for family, name in FAMILY_NOTEBOOKS.items():
        code = "\n".join(c.source for c in nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4).cells
                         if c.cell_type == "code")
        assert f'family_artifacts("{family}", SCALE, chosen=ARTIFACTS)' in code
        assert "ArtifactPanel(ids, SCALE" in code and "reproduce(ids, SCALE" in code  # the panel, then the code
        assert 'project_folder("figures")' in code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_one_papermill_parameters_cell_with_the_scale(path):
    cells = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1 and "SCALE = notebook_scale()" in cells[0].source
    papermill = pytest.importorskip("papermill", reason="papermill comes with the lab extra")
    parameters = papermill.inspect_notebook(str(path))
    assert "SCALE" in parameters


def test_papermill_runs_a_notebook_at_another_scale(tmp_path):
    papermill = pytest.importorskip("papermill", reason="papermill comes with the lab extra")
    out = tmp_path / "explorer.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "06_explorer.ipynb"), str(out),
                               parameters={"SCALE": "paper", "RUNS": str(tmp_path / "empty")},
                               cwd=str(ROOT / "notebooks"), progress_bar=False, kernel_name="python3")
    executed = nbformat.read(out, as_version=4)
    text = "\n".join(str(output) for cell in executed.cells for output in cell.get("outputs", []))
    assert "0 runs in" in text and "the store is empty" in text
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "SCALE = \"paper\"" in injected[0].source
