"""agent-lab reproduce: plans per scale, shared runs, rendering beside the paper, SOURCES.json, resume."""
import json
from pathlib import Path

import pandas as pd
import pytest

from agent_lab import RunConfig, train
from agent_lab.cli import main
from agent_lab.config import ConfigError
from agent_lab.paper import ARTIFACTS
from agent_lab.paper import cost as cost_module
from agent_lab.paper.plan import bsr, rigl
from agent_lab.paper.reproduce import describe_plan, plan, reproduce, run_state
from agent_lab.paper.scales import SCALES, get_scale
from agent_lab.paper.summary import results_markdown
from agent_lab.runs import load_run

IDS = list(ARTIFACTS)


def test_every_artifact_has_runs_at_the_smoke_scale_and_the_paper_scale():
    smoke = plan(["all"], "smoke")
    paper = plan(["all"], "paper")
    assert list(smoke.runs) == IDS
    for artifact in IDS:
        assert smoke.runs[artifact], artifact
        if artifact != "fig15":  # ImageNet: runs at the paper scale only when the data are there
            assert paper.runs[artifact], artifact
    for runs in paper.runs.values():
        for run in runs:
            assert run.config.width == 1 and run.config.epochs in (100, 200, 250)
            assert run.config.train_subset is None and run.config.dataset != "cifar10-mini"


def test_the_cpu_scale_trains_standard_vgg_runs_on_the_cifar10_subset():
    cpu = plan(["all"], "cpu")
    for runs in cpu.runs.values():
        for run in runs:
            config = run.config
            assert config.dataset == "cifar10" and config.train_subset == 10000 and config.test_subset == 2000
            assert config.model.startswith("vgg") and config.adversarial == "none"
            assert config.epochs == 20 and config.width == 0.125
    # what is not run there says so
    assert not cpu.runs["table3"] and "not run" in ARTIFACTS["table3"].note("cpu")
    assert cpu.runs["fig23"] and "standard training in place of AT" in ARTIFACTS["fig23"].note("cpu")


def test_artifacts_share_runs_by_config_hash():
    shared = plan(["table1", "fig7", "fig17", "fig4"], "cpu")
    keys = {artifact: {run.key for run in runs} for artifact, runs in shared.runs.items()}
    assert keys["fig7"] == keys["fig17"] and keys["fig7"] <= keys["table1"] and keys["fig4"] <= keys["table1"]
    assert len(shared.distinct) == len(keys["table1"]) == 12  # 2 sparsities x 2 arms x 3 seeds


def test_scale_rules_epochs_budgets_update_interval_and_attacks():
    cpu, smoke, paper = SCALES["cpu"], SCALES["smoke"], SCALES["paper"]
    assert [cpu.budget(e, 200) for e in (20, 40, 70, 90, 140, 200)] == [2, 4, 7, 9, 14, 20]
    assert [cpu.budget(e, 250) for e in (20, 80, 130, 180, 240)] == [2, 6, 10, 14, 19]
    assert [smoke.budget(e, 200) for e in (20, 200)] == [1, 2]
    adversarial = bsr("agent", sparsity=0.9, adversarial="at")
    assert adversarial.robust_eval_epochs == (20, 40, 70, 90, 140, 200)
    at_smoke = smoke.apply(adversarial, "cpu")
    assert at_smoke.robust_eval_epochs == (1, 2) and at_smoke.attack_steps == 2
    assert (at_smoke.robust_eval, at_smoke.robust_eval_restarts) == ("pgd20", 2)
    assert paper.apply(adversarial, "cpu") == adversarial.replace(device="cpu")
    rigl90 = rigl("sgd", sparsity=0.9)
    assert rigl90.update_every is None  # the pipeline default (100) is kept as the paper's
    explicit = cpu.apply(rigl90.replace(update_every=100), "cpu")
    assert explicit.update_every == round(100 * 79 / 391)  # as often per epoch as the paper's
    with pytest.raises(ValueError, match="valid choices: smoke, cpu, paper"):
        get_scale("laptop")


def test_robust_eval_epochs_is_checked_and_hashes_only_when_set():
    assert RunConfig().config_hash() == "f4062c12b3c4"  # unchanged by the field's arrival
    config = RunConfig(adversarial="at", epochs=4, robust_eval_epochs=[2, 4])
    assert config.robust_eval_epochs == (2, 4) and config.config_hash() != config.replace(
        robust_eval_epochs=()).config_hash()
    with pytest.raises(ConfigError, match=r"robust_eval_epochs: \(4, 2\) is invalid; expected increasing whole epochs"):
        RunConfig(adversarial="at", epochs=4, robust_eval_epochs=(4, 2))
    with pytest.raises(ConfigError, match="in 1..4"):
        RunConfig(adversarial="at", epochs=4, robust_eval_epochs=(5,))
    with pytest.raises(ConfigError, match="needs a robust evaluation"):
        RunConfig(epochs=4, robust_eval_epochs=(2,))


def test_robust_accuracy_is_measured_on_the_whole_test_set_at_the_named_epochs_only(tmp_path):
    config = RunConfig(dataset="cifar10-mini", train_subset=128, test_subset=64, width=0.0625, epochs=3,
                       batch_size=64, robust_eval="pgd20", robust_eval_restarts=1, robust_eval_subset=16,
                       robust_eval_epochs=(2,), device="cpu")
    history = train(config, out=tmp_path, progress=False).history
    assert history["robust_acc"].isna().tolist() == [True, False, False]
    assert history["robust_n"].tolist()[1:] == [64, 64]  # the whole test set, not the subset of 16


def _fig7(tmp_path, **kwargs):
    return reproduce(["fig7"], "smoke", out=tmp_path / "runs", figures=tmp_path / "figures", progress=False, **kwargs)


def _meta_times(runs: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/meta.json")}


def test_reproduce_smoke_renders_traces_and_a_second_call_trains_nothing(tmp_path):
    result = _fig7(tmp_path)["fig7"]
    folder = tmp_path / "figures" / "fig7"
    for name in ("fig7_smoke.png", "fig7_smoke.pdf", "curves_smoke.csv", "curves_smoke.md", "verdicts_smoke.csv",
                 "histories_smoke.csv", "SOURCES.json"):
        assert (folder / name).is_file(), name
    sources = json.loads((folder / "SOURCES.json").read_text())["smoke"]
    assert sources["scale"] == "smoke" and sources["library_version"] and sources["seeds"] == [0]
    assert len(sources["runs"]) == 4  # BSR-Net and A-BSR-Net at 90 and 99 %
    for entry in sources["runs"]:
        run = load_run(entry["run_dir"])
        assert run.config.config_hash() == entry["config_hash"] and run.status == entry["status"] == "completed"
    assert result.verdicts["verdict"].tolist() == ["not testable"]  # one seed: no standard error
    histories = pd.read_csv(folder / "histories_smoke.csv")
    assert set(histories["label"]) == {"BSR-Net", "A-BSR-Net"} and histories["test_acc"].between(0, 100).all()
    before = _meta_times(tmp_path / "runs")
    _fig7(tmp_path)
    assert _meta_times(tmp_path / "runs") == before  # served from the store, nothing trained


def test_reproduce_resumes_an_interrupted_run(tmp_path):
    the_plan = plan(["fig7"], "smoke")
    first = next(iter(the_plan.distinct.values()))
    partial = train(first.config, out=tmp_path / "runs", progress=False, stop_after_epoch=1)
    assert partial.status == "interrupted" and run_state(first, tmp_path / "runs") == "interrupted"
    assert describe_plan(the_plan, tmp_path / "runs")["state"].tolist().count("interrupted") == 1
    _fig7(tmp_path)
    finished = load_run(partial.run_dir)
    assert finished.status == "completed" and len(finished.history) == 2
    pd.testing.assert_series_equal(finished.history.iloc[0], partial.history.iloc[0])


def test_two_seeds_give_verdicts(tmp_path):
    result = _fig7(tmp_path, seeds=2)["fig7"]
    assert result.verdicts["verdict"].iloc[0] in ("held", "not held")
    assert "over" in result.verdicts["evidence"].iloc[0]
    markdown = results_markdown("smoke", tmp_path / "figures")
    assert markdown.startswith("**fig7** — BSR-Net vs A-BSR-Net") and "8 runs, seeds 0, 1" in markdown
    assert f"- *{result.verdicts['verdict'].iloc[0]}*: A-BSR-Net reaches" in markdown
    assert results_markdown("cpu", tmp_path / "figures") == ""


def test_budget_tables_sit_beside_the_paper_numbers(tmp_path):
    result = reproduce(["table8"], "smoke", out=tmp_path / "runs", figures=tmp_path / "figures",
                       progress=False)["table8"]
    tidy = result.tables["ours_beside_paper"]
    vgg = tidy[(tidy["arm"] == "AGENT") & (tidy["model"] == "VGG-C")].set_index("budget")
    assert vgg.loc[20, "paper"] == 76.1 and vgg.loc[240, "paper"] == 88.6  # Table 8's printed values
    assert (vgg["difference"] == vgg["ours"] - vgg["paper"]).all()
    layout = (tmp_path / "figures" / "table8" / "table8_smoke.md").read_text()
    assert "paper (reference only)" in layout and "smoke scale" in layout


def test_dry_run_lists_the_papers_exact_runs_without_training(tmp_path, capsys):
    assert main(["reproduce", "table5", "--scale", "paper", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "54 distinct runs (0 cached)" in out  # 3 arms x 2 sparsities x 3 objectives x 3 seeds
    assert out.count("[missing]") == 54 and '"robust_eval_epochs": [20, 40, 70, 90, 140, 200]' in out
    assert '"optimizer": "no-gamma"' in out and "vgg16-w1_cifar10_bsr0.99" in out
    assert list(tmp_path.iterdir()) == []


def test_list_shows_runs_needed_cached_and_the_cost(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cost_module, "seconds_per_pass", lambda *args, **kwargs: 1e-4)
    assert main(["list", "--scale", "smoke", "--cost", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fig7 " in out and "runs: 4 needed, 0 cached, 4 to train, ~" in out
    assert "total (shared runs once)" in out and "GPU: not measured here" in out


def test_bad_artifacts_and_seeds_are_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="table9 invalid; valid choices: table1"):
        plan(["table9"], "smoke")
    with pytest.raises(ValueError, match="seeds: 0 is invalid"):
        plan(["fig7"], "smoke", seeds=0)
    assert main(["reproduce", "fig99", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agent-lab: error: artifacts: fig99 invalid") and "\n" not in err


@pytest.mark.slow
@pytest.mark.parametrize("artifact", IDS)
def test_every_artifact_reproduces_at_the_smoke_scale(artifact, tmp_path_factory):
    store = tmp_path_factory.getbasetemp() / "smoke_store"  # shared runs are shared across the ids
    result = reproduce([artifact], "smoke", out=store / "runs", figures=store / "figures", progress=False)[artifact]
    assert (store / "figures" / artifact / "SOURCES.json").is_file()
    assert len(result.verdicts) == len(ARTIFACTS[artifact].claims)


def test_rerender_redraws_from_the_saved_histories_without_the_run_store(tmp_path, capsys):
    _fig7(tmp_path, seeds=2)
    folder = tmp_path / "figures" / "fig7"
    first = pd.read_csv(folder / "verdicts_smoke.csv")
    (folder / "fig7_smoke.png").unlink()
    store = tmp_path / "runs"
    store.rename(tmp_path / "moved")  # the run store is gone
    assert main(["reproduce", "fig7", "--scale", "smoke", "--rerender", "--figures", str(tmp_path / "figures")]) == 0
    assert (folder / "fig7_smoke.png").is_file()
    pd.testing.assert_frame_equal(pd.read_csv(folder / "verdicts_smoke.csv"), first)
    sources = json.loads((folder / "SOURCES.json").read_text())["smoke"]
    assert "rerendered" in sources and len(sources["runs"]) == 8  # the runs it was drawn from are kept
    assert main(["reproduce", "fig3", "--scale", "smoke", "--rerender", "--figures", str(tmp_path / "figures")]) == 2
    assert "no smoke-scale entry" in capsys.readouterr().err


def test_a_killed_reproduce_resumes_and_finishes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "agent_lab.cli", "reproduce", "fig7", "--scale", "smoke", "--quiet",
               "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "runs").glob("*/checkpoint.pt")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "figures" / "fig7" / "SOURCES.json").exists()  # killed before it rendered
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    sources = json.loads((tmp_path / "figures" / "fig7" / "SOURCES.json").read_text())["smoke"]
    assert [entry["status"] for entry in sources["runs"]] == ["completed"] * 4


def test_cost_uses_the_pass_times_measured_by_runs_in_the_store(tmp_path, monkeypatch):
    the_plan = plan(["fig7"], "smoke")
    first = next(iter(the_plan.distinct.values()))
    partial = train(first.config, out=tmp_path, progress=False, stop_after_epoch=1)
    row = partial.history.iloc[-1]
    measured = cost_module.measured_pass_seconds(tmp_path)
    key = (first.config.model, first.config.width, first.config.dataset, first.config.batch_size)
    assert measured == {key: pytest.approx(row["wall_time"] / row["fwd_bwd"])}

    def no_timing(*args, **kwargs):
        raise AssertionError("the store's measurement should have been used")

    monkeypatch.setattr(cost_module, "seconds_per_pass", no_timing)
    frame = cost_module.plan_cost(the_plan, tmp_path).set_index("run")
    assert frame.loc[first.config.run_name(), "state"] == "interrupted"
    assert frame.loc[first.config.run_name(), "epochs_left"] == 1
    per_pass = measured[key]
    sgd = [run for run in the_plan.distinct.values() if run.config.optimizer == "sgd"][-1]
    train_n, test_n = sgd.config.train_subset, sgd.config.test_subset
    assert frame.loc[sgd.config.run_name(), "seconds"] == pytest.approx(2 * (train_n + test_n / 3) * per_pass)
