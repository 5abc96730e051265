"""agent-lab reproduce end to end at the smoke scale: render, trace, serve from the store, resume, rerender."""
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from agent_lab import train
from agent_lab.cli import main
from agent_lab.paper import ARTIFACTS
from agent_lab.paper.reproduce import describe_plan, plan, reproduce, run_state
from agent_lab.paper.summary import results_markdown
from agent_lab.runs import load_run


def _fig7(root: Path, **kwargs):
    return reproduce(["fig7"], "smoke", out=root / "runs", figures=root / "figures", progress=False, **kwargs)


@pytest.fixture(scope="module")
def fig7_two_seeds(tmp_path_factory):
    """Fig. 7 at the smoke scale with two seeds (8 runs), trained once for the tests of this module."""
    root = tmp_path_factory.mktemp("fig7")
    return root, _fig7(root, seeds=2)["fig7"]


def _meta_times(runs: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/meta.json")}


def test_reproduce_renders_traces_and_a_second_call_trains_nothing(fig7_two_seeds):
    root, result = fig7_two_seeds
    folder = root / "figures" / "smoke" / "fig7"
    for name in ("fig7_smoke.png", "fig7_smoke.pdf", "curves_smoke.csv", "curves_smoke.md", "verdicts_smoke.csv",
                 "histories_smoke.csv", "SOURCES.json"):
        assert (folder / name).is_file(), name
    sources = json.loads((folder / "SOURCES.json").read_text())["smoke"]
    assert sources["scale"] == "smoke" and sources["library_version"] and sources["seeds"] == [0, 1]
    assert len(sources["runs"]) == 8  # BSR-Net and A-BSR-Net at 90 and 99 %, two seeds
    for entry in sources["runs"]:
        run = load_run(entry["run_dir"])
        assert run.config.config_hash() == entry["config_hash"] and run.status == entry["status"] == "completed"
    histories = pd.read_csv(folder / "histories_smoke.csv")
    assert set(histories["label"]) == {"BSR-Net", "A-BSR-Net"} and histories["test_acc"].between(0, 100).all()
    assert result.verdicts["verdict"].iloc[0] in ("held", "not held")  # two seeds: a standard error
    assert "over" in result.verdicts["evidence"].iloc[0]
    before = _meta_times(root / "runs")
    _fig7(root, seeds=2)
    assert _meta_times(root / "runs") == before  # served from the store, nothing trained
    one_seed = _fig7(root)["fig7"]  # the seed-0 runs are a subset: served too
    assert _meta_times(root / "runs") == before
    assert one_seed.verdicts["verdict"].tolist() == ["not testable"]  # one seed: no standard error


def test_results_markdown_lists_the_verdicts(fig7_two_seeds):
    root, result = fig7_two_seeds
    _fig7(root, seeds=2)
    markdown = results_markdown("smoke", root / "figures")
    assert markdown.startswith("**fig7** — BSR-Net vs A-BSR-Net") and "8 runs, seeds 0, 1" in markdown
    assert f"- *{result.verdicts['verdict'].iloc[0]}*: A-BSR-Net reaches" in markdown
    assert results_markdown("cpu", root / "figures") == ""


def test_rerender_redraws_from_the_saved_histories_without_the_run_store(fig7_two_seeds, tmp_path, capsys):
    root, _ = fig7_two_seeds
    _fig7(root, seeds=2)
    figures = tmp_path / "figures"
    shutil.copytree(root / "figures", figures)  # no run store next to this copy
    folder = figures / "smoke" / "fig7"
    first = pd.read_csv(folder / "verdicts_smoke.csv")
    (folder / "fig7_smoke.png").unlink()
    assert main(["reproduce", "fig7", "--scale", "smoke", "--rerender", "--figures", str(figures)]) == 0
    assert (folder / "fig7_smoke.png").is_file()
    pd.testing.assert_frame_equal(pd.read_csv(folder / "verdicts_smoke.csv"), first)
    sources = json.loads((folder / "SOURCES.json").read_text())["smoke"]
    assert "rerendered" in sources and len(sources["runs"]) == 8  # the runs it was drawn from are kept
    assert main(["reproduce", "fig3", "--scale", "smoke", "--rerender", "--figures", str(figures)]) == 2
    assert "no smoke-scale entry" in capsys.readouterr().err


def test_archived_runs_restore_into_a_fresh_store_and_render_the_same_without_training(fig7_two_seeds, tmp_path,
                                                                                      capsys, monkeypatch):
    root, _ = fig7_two_seeds
    result = _fig7(root, seeds=2)["fig7"]  # served from the module's store (another test drew one seed since)
    archive, fresh = tmp_path / "archive", tmp_path / "runs"
    assert main(["archive", "fig7", "--scale", "smoke", "--seeds", "2", "--out", str(root / "runs"),
                 "--archive", str(archive)]) == 0
    assert "8 of 8 runs archived" in capsys.readouterr().out
    assert not list((archive / "smoke").glob("*/*.pt"))
    assert main(["reproduce", "fig7", "--seeds", "2", "--out", str(fresh), "--archive", str(archive),
                 "--dry-run"]) == 0
    assert capsys.readouterr().out.count("[archived]") == 8
    assert main(["list", "--scale", "smoke", "--seeds", "2", "--out", str(fresh), "--archive", str(archive)]) == 0
    assert "runs: 8 needed, 0 cached, 8 archived, 0 to train" in capsys.readouterr().out
    train_module = importlib.import_module("agent_lab.train")
    monkeypatch.setattr(train_module, "prepare", lambda *a, **k: pytest.fail("a run was trained"))
    again = reproduce(["fig7"], "smoke", seeds=2, out=fresh, figures=tmp_path / "figures", progress=False,
                      archive=archive)["fig7"]
    pd.testing.assert_frame_equal(again.verdicts, result.verdicts)
    for name in ("curves_smoke.csv", "histories_smoke.csv"):
        mine = pd.read_csv(tmp_path / "figures" / "smoke" / "fig7" / name).drop(columns=["run"], errors="ignore")
        theirs = pd.read_csv(root / "figures" / "smoke" / "fig7" / name).drop(columns=["run"], errors="ignore")
        pd.testing.assert_frame_equal(mine, theirs)
    assert len(list(fresh.glob("*/meta.json"))) == 8
    # without the archive the fresh store would train them: --no-archive says so in the plan
    empty = tmp_path / "empty"
    assert main(["reproduce", "fig7", "--seeds", "2", "--out", str(empty), "--archive", str(archive),
                 "--no-archive", "--dry-run"]) == 0
    assert capsys.readouterr().out.count("[missing]") == 8


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


def test_ctrl_c_during_a_run_stops_the_whole_reproduction(tmp_path):
    """train() turns Ctrl-C into an interrupted run; train_all must then start nothing more."""
    from agent_lab.paper.reproduce import train_all

    the_plan = plan(["fig7"], "smoke")
    started = []

    def on_event(event):
        if event.kind == "start":
            started.append(event.run.config.run_name())
        if event.kind == "epoch" and len(started) == 1:
            raise KeyboardInterrupt  # as Ctrl-C during the first run's second epoch

    with pytest.raises(KeyboardInterrupt, match="4 of 4 run\\(s\\) are not finished"):
        train_all(the_plan, tmp_path / "runs", progress=False, on_event=on_event)
    assert len(started) == 1 and run_state(next(iter(the_plan.distinct.values())), tmp_path / "runs") == "interrupted"


def test_a_killed_reproduce_resumes_and_finishes(tmp_path):
    command = [sys.executable, "-m", "agent_lab.cli", "reproduce", "fig7", "--scale", "smoke", "--quiet",
               "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "runs").glob("*/checkpoint.pt")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "figures" / "smoke" / "fig7" / "SOURCES.json").exists()  # killed before it rendered
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    sources = json.loads((tmp_path / "figures" / "smoke" / "fig7" / "SOURCES.json").read_text())["smoke"]
    assert [entry["status"] for entry in sources["runs"]] == ["completed"] * 4


def test_budget_tables_sit_beside_the_paper_numbers(tmp_path):
    result = reproduce(["table4"], "smoke", out=tmp_path / "runs", figures=tmp_path / "figures",
                       progress=False)["table4"]
    tidy = result.tables["ours_beside_paper"].set_index(["arm", "budget"])
    assert tidy.loc[("AGENT+MVR", 20), "paper"] == 71.6 and tidy.loc[("MVR", 200), "paper"] == 74.4  # Table 4
    assert (tidy["difference"] == tidy["ours"] - tidy["paper"]).all()
    assert tidy.loc[("MVR", 20), "epoch"] == 1 and tidy.loc[("MVR", 200), "epoch"] == 2  # of 250 -> of 2
    layout = (tmp_path / "figures" / "smoke" / "table4" / "table4_smoke.md").read_text()
    assert "paper (reference only)" in layout and "smoke scale" in layout


@pytest.mark.slow
@pytest.mark.parametrize("artifact", list(ARTIFACTS))
def test_every_artifact_reproduces_at_the_smoke_scale(artifact, tmp_path_factory):
    store = tmp_path_factory.getbasetemp() / "smoke_store"  # runs are shared across the ids
    result = reproduce([artifact], "smoke", out=store / "runs", figures=store / "figures", progress=False)[artifact]
    assert (store / "figures" / "smoke" / artifact / "SOURCES.json").is_file()
    assert len(result.verdicts) == len(ARTIFACTS[artifact].claims)
