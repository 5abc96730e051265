"""What a notebook shows at smoke scale says it is not a result; a person opening one gets `cpu`."""
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import agent_lab.quickstart  # noqa: E402
from agent_lab.quickstart import QUICKSTART_CONFIG  # noqa: E402
from agent_lab.reporting import (DEFAULT_SCALE, SCALE_ENV, SCALES, SMOKE_COLUMN_VALUE, SMOKE_LABEL,  # noqa: E402
                                 Labelled, ScaleReport, label_figure, notebook_scale, plot_training_curves,
                                 save_figure, save_table, show)
from agent_lab.widgets import TrainPanel  # noqa: E402

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
HISTORY = pd.DataFrame({"epoch": [1, 2], "train_loss": [2.3, 2.2], "test_acc": [0.1, 0.1]})


def _figure() -> plt.Figure:
    return plot_training_curves({"run": HISTORY})


# -- the scale a notebook runs at ----------------------------------------------------------------
def test_notebook_scale_is_cpu_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv(SCALE_ENV, raising=False)
    assert notebook_scale() == DEFAULT_SCALE == "cpu"
    monkeypatch.setenv(SCALE_ENV, "smoke")
    assert notebook_scale() == "smoke"
    monkeypatch.setenv(SCALE_ENV, "paper")
    assert notebook_scale() == "paper"


def test_notebook_scale_names_the_valid_scales(monkeypatch):
    monkeypatch.setenv(SCALE_ENV, "tiny")
    with pytest.raises(ValueError, match=r"AGENT_LAB_SCALE: 'tiny' is invalid; valid choices: smoke, cpu, paper"):
        notebook_scale()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_notebook_opened_by_a_person_runs_at_cpu_scale_and_tests_at_smoke(path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# Parameters"))
    monkeypatch.delenv(SCALE_ENV, raising=False)
    namespace: dict = {}
    exec(params.source, namespace)
    assert namespace["SCALE"] == "cpu"
    monkeypatch.setenv(SCALE_ENV, "smoke")
    exec(params.source, namespace)
    assert namespace["SCALE"] == "smoke"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_save_and_show_through_the_scale_report(path):
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    # figures and tables go through what labels them at smoke scale: a ScaleReport, the paper layer's
    # reproduce (its renderers label every smoke output), or label_figure
    assert ("ScaleReport.for_topic(SCALE" in code or "reproduce(ids, SCALE" in code
            or "label_figure(" in code and ", SCALE)" in code)
    assert not re.search(r"(?<![.\w])save_(figure|table)\(", code)


def test_the_test_suite_runs_the_notebooks_at_smoke_scale():
    # `pytest --nbval-lax notebooks/` loads notebooks/conftest.py; the kernels inherit its environment
    conftest = Path(__file__).resolve().parents[1] / "notebooks" / "conftest.py"
    assert 'os.environ[SCALE_ENV] = "smoke"' in conftest.read_text()
    assert "smoke" in SCALES


# -- figures --------------------------------------------------------------------------------------
def test_smoke_figures_carry_the_label_in_their_title(tmp_path):
    fig = _figure()
    fig.suptitle("VGG-16 x0.125, rigl 90% sparse, cifar10-mini")
    paths = save_figure(fig, tmp_path / "curves", scale="smoke")
    title = fig.get_suptitle()
    assert title.startswith("VGG-16 x0.125") and title.endswith(SMOKE_LABEL)
    assert all(p.stat().st_size > 0 for p in paths)
    # saved with bbox_inches="tight": the label lies inside what is written
    renderer = fig.canvas.get_renderer()
    box, text = fig.get_tightbbox(renderer), fig._suptitle.get_window_extent(renderer)
    dpi = fig.dpi
    assert box.y1 * dpi >= text.y1 - 1 and box.x0 * dpi <= text.x0 + 1 and box.x1 * dpi >= text.x1 - 1
    label_figure(fig, "smoke")  # labelling twice adds nothing
    assert fig.get_suptitle().count(SMOKE_LABEL) == 1
    plt.close(fig)


@pytest.mark.parametrize("scale", ["cpu", "paper", None])
def test_figures_at_other_scales_are_not_labelled(scale, tmp_path):
    fig = _figure()
    save_figure(fig, tmp_path / "curves", scale=scale)
    assert SMOKE_LABEL not in fig.get_suptitle()
    plt.close(fig)


# -- tables ---------------------------------------------------------------------------------------
def test_smoke_tables_carry_a_caption_and_a_scale_column(tmp_path):
    csv, md = save_table(HISTORY, tmp_path / "table", scale="smoke")
    saved = pd.read_csv(csv)
    assert list(saved.columns) == ["scale", *HISTORY.columns] and (saved["scale"] == SMOKE_COLUMN_VALUE).all()
    assert md.read_text().startswith(f"*{SMOKE_LABEL}*\n\n|")
    shown = show(HISTORY, "smoke")
    assert isinstance(shown, Labelled) and shown.data is HISTORY
    html = shown._repr_html_()
    assert "these numbers are not results" in html and "<table" in html
    assert repr(shown).startswith(f"[{SMOKE_LABEL}]\n")
    assert "not results" in Labelled({"a": 1}, SMOKE_LABEL)._repr_html_()  # objects without HTML too


def test_tables_at_other_scales_are_unchanged(tmp_path):
    csv, md = save_table(HISTORY, tmp_path / "table", scale="cpu")
    assert list(pd.read_csv(csv).columns) == list(HISTORY.columns)
    assert md.read_text().startswith("|")
    assert show(HISTORY, "cpu") is HISTORY


def test_scale_report_labels_and_files_by_scale(tmp_path):
    smoke = ScaleReport.for_topic("smoke", "quickstart", root=tmp_path)
    cpu = ScaleReport.for_topic("cpu", "quickstart", root=tmp_path)
    assert smoke.folder == tmp_path / "smoke" and cpu.folder == tmp_path / "quickstart"
    assert smoke.label == SMOKE_LABEL and cpu.label is None
    fig = _figure()
    assert {p.name for p in smoke.figure(fig, "curves")} == {"curves.png", "curves.pdf"}
    assert SMOKE_LABEL in fig.get_suptitle()
    plt.close(fig)
    assert isinstance(smoke.table(HISTORY, "table"), Labelled) and (tmp_path / "smoke" / "table.md").exists()
    assert cpu.table(HISTORY) is HISTORY and cpu.show({"x": 1}) == {"x": 1}


def test_train_panel_labels_what_it_shows_at_smoke_scale(tiny_config, tmp_path, capsys):
    panel = TrainPanel(tiny_config.replace(epochs=1), out=tmp_path / "runs", figures=tmp_path / "figures",
                       scale="smoke")
    panel.button.click()
    assert panel.result is not None and panel.result.status == "completed"
    assert SMOKE_LABEL in capsys.readouterr().out  # outside a kernel the Output widget prints
    assert (tmp_path / "figures" / "training_curves.png").exists()


# -- the quickstart says what it runs -------------------------------------------------------------
def test_quickstart_docstring_states_the_width_that_runs():
    widths = re.findall(r"width-([\d.]+)", agent_lab.quickstart.__doc__)
    assert widths and all(float(w) == QUICKSTART_CONFIG.width for w in widths)


def test_quickstart_notebook_states_the_width_that_runs():
    nb = nbformat.read(next(p for p in NOTEBOOKS if p.name == "00_quickstart.ipynb"), as_version=4)
    text = " ".join(" ".join(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    widths = re.findall(r"width ([\d.]+)", text)
    assert widths and all(float(w) == QUICKSTART_CONFIG.width for w in widths)


def test_a_figure_saved_twice_gives_the_same_bytes(tmp_path):
    """Committed figures redrawn from the same data do not change (no creation date in the PDF)."""
    contents = []
    for attempt in range(2):
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [3, 1, 2])
        paths = save_figure(fig, tmp_path / f"try{attempt}" / "figure")
        plt.close(fig)
        contents.append([path.read_bytes() for path in paths])
    assert contents[0] == contents[1]
