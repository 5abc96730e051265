from agent_lab.quickstart import QUICKSTART_CONFIG, run_quickstart
from agent_lab.widgets import TrainPanel


def test_panel_trains_the_selected_config_when_the_button_is_pressed(tiny_config, tmp_path):
    panel = TrainPanel(tiny_config.replace(epochs=1), out=tmp_path / "runs", figures=tmp_path / "figures")
    panel.model.value = "resnet18"
    panel.width.value = 0.125
    panel.epochs.value = 1
    panel.button.click()
    assert panel.result is not None and panel.result.status == "completed"
    assert panel.result.config.model == "resnet18" and panel.result.config.width == 0.125
    assert (tmp_path / "figures" / "training_curves.png").exists()


def test_quickstart_writes_table_and_figures(tmp_path):
    config = QUICKSTART_CONFIG.replace(dataset="synthetic", width=0.125, epochs=1)
    result = run_quickstart(out=tmp_path / "runs", figures=tmp_path / "figures", progress=False, config=config)
    assert list(result.table.columns)[:5] == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
    assert len(result.table) == 1
    assert {p.name for p in result.figure_paths} == {"quickstart.png", "quickstart.pdf", "quickstart.csv",
                                                    "quickstart.md"}
    assert all(p.stat().st_size > 0 for p in result.figure_paths)
