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


def test_quickstart_puts_sgd_and_agent_side_by_side(tmp_path):
    config = QUICKSTART_CONFIG.replace(dataset="synthetic", width=0.125, epochs=2, update_every=3)
    result = run_quickstart(out=tmp_path / "runs", figures=tmp_path / "figures", progress=False, config=config)
    assert list(result.table.columns) == ["epoch", "acc SGD", "fwd_bwd SGD", "time_s SGD", "acc AGENT",
                                          "fwd_bwd AGENT", "time_s AGENT"]
    assert result.table["epoch"].tolist() == [1, 2]
    assert (result.table["fwd_bwd AGENT"] > result.table["fwd_bwd SGD"]).all()  # AGENT's extra passes are counted
    assert result.runs["AGENT"].config.optimizer == "agent" and result.runs["SGD"].config.seed == 0
    names = {p.name for p in result.figure_paths}
    assert {"quickstart_by_epoch.png", "quickstart_by_fwd_bwd.pdf", "quickstart.csv", "quickstart.md"} <= names
    assert all(p.stat().st_size > 0 for p in result.figure_paths)
