"""ArtifactPanel and ReproduceJob driven headless: set the widgets, click, assert on the files written,
the status table and what trains; Stop leaves a resumable run that the next Run finishes."""
from __future__ import annotations

import json
import time

import pytest
import torch

from agent_lab.paper import ARTIFACTS
from agent_lab.paper.job import ReproduceJob
from agent_lab.paper.reproduce import archive_plan, arm_choices, plan
from agent_lab.paper.scales import get_scale
from agent_lab.runs import RunLock, run_dir_for
from agent_lab.widgets import ArtifactPanel
from agent_lab.widgets.artifact_panel import status_html


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # conftest restores the count after each test


def _trained(panel) -> list[str]:
    """Record the runs a panel's job starts training (its 'start' events)."""
    started: list[str] = []
    panel.job.listeners.append(lambda event: started.append(event.run.config.run_name())
                               if event.kind == "start" else None)
    return started


def _panel(tmp_path, artifacts, sparsities=None, methods=None, out="runs") -> ArtifactPanel:
    """A smoke-scale panel on the artifacts, with the sparsities and methods chosen as a user would."""
    panel = ArtifactPanel(artifacts, "smoke", out=tmp_path / out, figures=tmp_path / "figures",
                          archive=tmp_path / "archive")
    if sparsities is not None:
        panel.sparsities.value = sparsities
    if methods is not None:
        panel.methods.value = methods
    return panel


def _run_twice_and_check(tmp_path, artifacts, sparsities=None, methods=None):
    panel = _panel(tmp_path, artifacts, sparsities, methods)
    assert set(panel.job.status["state"]) == {"missing"}
    started = _trained(panel)
    panel.run_button.click()
    panel.wait(600)
    assert not panel.busy and "done" in panel.message.value, panel.message.value
    assert len(started) == len(panel.job.status)
    assert set(panel.job.status["state"]) == {"completed"}
    assert panel.progress.value == panel.progress.max == len(panel.job.status)
    for artifact in artifacts:
        folder = tmp_path / "figures" / "smoke" / artifact
        names = {path.name for path in folder.iterdir()}
        assert f"{artifact}_smoke.png" in names and f"{artifact}_smoke.pdf" in names and "verdicts_smoke.csv" in names
        sources = json.loads((folder / "SOURCES.json").read_text())["smoke"]
        assert {entry["run_dir"].split("/")[-1] for entry in sources["runs"]} <= set(panel.job.status["run"])
    assert len(panel.results.children) == len(artifacts) and panel.live.value  # figures shown in the panel
    assert "completed" in panel.status_table.value

    again = _panel(tmp_path, artifacts, sparsities, methods)
    assert set(again.job.status["state"]) == {"cached"}
    started_again = _trained(again)
    again.run(wait=True)
    assert started_again == [] and set(again.job.status["state"]) == {"cached"}
    assert "runs {0}/{0}".format(len(again.job.status)) in again.progress_text.value

    # a fresh store (a fresh clone) with the archive of these runs: shown archived, restored, nothing trained
    if any(run.arm.driver == "hydra" for run in again.job.plan.distinct.values()):
        return panel  # HYDRA's phases keep their weights: they are not archived
    archive_plan(again.job.plan, tmp_path / "runs", tmp_path / "archive")
    fresh = _panel(tmp_path, artifacts, sparsities, methods, out="fresh")
    assert set(fresh.job.status["state"]) == {"archived"} and fresh.job.eta_seconds == 0
    started_fresh = _trained(fresh)
    fresh.run(wait=True)
    assert started_fresh == [] and set(fresh.job.status["state"]) == {"cached"}
    assert "done" in fresh.message.value, fresh.message.value
    return panel


def test_panel_for_fig1_and_table5_writes_outputs_and_a_second_run_trains_nothing(tmp_path):
    """All of Fig. 1 and Table 5's 'No γ' arm at 90 % (the whole of both: the slow test below)."""
    panel = _run_twice_and_check(tmp_path, ("fig1", "table5"), sparsities=(0.0, 0.5, 0.9), methods=("SGD", "No γ"))
    assert set(panel.job.status["label"]) == {"SGD", "No γ"}
    table5 = panel.job.status[panel.job.status["artifacts"] == "table5"]
    assert len(table5) == 3 and table5["facets"].str.endswith("sparsity=0.9").all()  # AT, TRADES, standard
    assert len(panel.job.status) - len(table5) == len(plan(["fig1"], "smoke").distinct)


@pytest.mark.slow
def test_panel_for_all_of_fig1_and_table5_writes_outputs_and_a_second_run_trains_nothing(tmp_path):
    panel = _run_twice_and_check(tmp_path, ("fig1", "table5"))
    assert len(panel.job.status) == len(plan(["fig1", "table5"], "smoke").distinct) == 23


def test_stop_leaves_the_run_resumable_and_the_next_run_finishes_it(tmp_path):
    panel = ArtifactPanel("fig7", "smoke", out=tmp_path / "runs", figures=tmp_path / "figures")
    first_epochs = []

    def stop_after_one_epoch(event):
        if event.kind == "epoch" and not first_epochs:
            first_epochs.append(event.run.config.run_name())
            panel.stop_button.click()

    panel.job.listeners.append(stop_after_one_epoch)
    panel.run_button.click()
    assert panel.stop_button.disabled is False and panel.run_button.disabled is True
    panel.wait(300)
    assert "stopped" in panel.message.value and "resume" in panel.message.value
    states = panel.job.status.set_index("run")["state"]
    assert states[first_epochs[0]] == "interrupted" and panel.job.status.set_index("run")["epoch"][first_epochs[0]] == 1
    assert (states.drop(first_epochs[0]) == "missing").all()  # nothing else started
    assert not (tmp_path / "figures" / "smoke" / "fig7").exists()  # nothing rendered from a partial set
    assert panel.run_button.disabled is False and panel.stop_button.disabled is True

    started = _trained(panel)
    panel.run(wait=True)
    assert set(panel.job.status["state"]) == {"completed"} and len(started) == 4
    assert (tmp_path / "figures" / "smoke" / "fig7" / "fig7_smoke.png").exists()


def test_methods_and_sparsities_narrow_the_job_and_claims_without_their_arms_are_not_testable(tmp_path):
    panel = ArtifactPanel(("fig7",), "smoke", out=tmp_path / "runs", figures=tmp_path / "figures")
    assert panel.methods.options == ("BSR-Net", "A-BSR-Net") and panel.sparsities.value == (0.9, 0.99)
    panel.methods.value = ("A-BSR-Net",)
    panel.sparsities.value = (0.99,)
    assert panel.job.status["label"].tolist() == ["A-BSR-Net"]
    assert panel.job.status["facets"].iloc[0].endswith("sparsity=0.99")
    panel.run(wait=True)
    verdicts = panel.job.results["fig7"].verdicts
    assert (verdicts["verdict"] == "not testable").all()
    panel.artifacts.value = ("fig4", "fig7")  # the same choices: the narrowing is kept
    assert panel.methods.value == ("A-BSR-Net",) and panel.sparsities.value == (0.99,)
    expected = {run.config.run_name() for run in plan(["fig4", "fig7"], "smoke", labels=["A-BSR-Net"],
                                                      sparsities=[0.99]).distinct.values()}
    assert set(panel.job.status["run"]) == expected
    panel.artifacts.value = ("table5",)  # other choices: every method and sparsity selected again
    assert panel.methods.value == ("A-BSR-Net", "Fix c", "No γ") and panel.sparsities.value == (0.9, 0.99)
    assert len(panel.job.status) == len(plan(["table5"], "smoke").distinct)


def test_the_job_reports_progress_eta_and_live_curves(tmp_path):
    job = ReproduceJob(["fig7"], "smoke", labels=["BSR-Net"], out=tmp_path / "runs", figures=tmp_path / "figures")
    assert len(job.status) == 2 and job.eta_seconds > 0 and "ETA" in job.summary()
    seen = []
    job.listeners.append(lambda event: seen.append((event.kind, job.summary())))
    results = job.run()
    kinds = [kind for kind, _ in seen]
    assert kinds == ["start", "epoch", "epoch", "done"] * 2
    assert any("epoch 1/2" in text for _, text in seen)
    assert job.eta_seconds == 0 and job.summary() == "runs 2/2" and list(results) == ["fig7"]
    curves = job.live_curves()
    assert len(curves) == 4 and curves["test_acc"].between(0, 100).all()
    assert "completed" in status_html(job.status) and "#2e7d32" in status_html(job.status)


def test_bad_choices_are_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="artifacts: fig99 invalid; valid choices: table1"):
        ArtifactPanel("fig99", "smoke", out=tmp_path)
    labels, sparsities = arm_choices(["table2"], "smoke")
    arms = ARTIFACTS["table2"].arms_at(get_scale("smoke"))
    assert labels == list(dict.fromkeys(arm.label for arm in arms))
    assert sparsities == sorted({float(arm.facet["sparsity"]) for arm in arms}) and 0.0 in sparsities


def test_a_run_another_process_holds_shows_as_waiting_and_stop_ends_the_wait(tmp_path):
    job = ReproduceJob(["fig7"], "smoke", labels=["BSR-Net"], sparsities=[0.9], out=tmp_path / "runs",
                       figures=tmp_path / "figures")
    (run,) = job.plan.distinct.values()
    holder = RunLock(run_dir_for(run.config, tmp_path / "runs")).acquire(timeout=0, notify=None)
    states = []
    job.listeners.append(lambda event: states.append((event.kind, job.status.at[0, "state"])))
    worker = job.start()
    deadline = time.monotonic() + 60
    while ("waiting", "waiting") not in states and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ("waiting", "waiting") in states
    job.stop()
    worker.join(30)
    assert not worker.is_alive() and isinstance(job.error, KeyboardInterrupt)
    assert job.status.at[0, "state"] == "waiting"  # still held by the other process
    holder.release()
    job.run()  # the holder let go without training it: this job trains it
    assert job.status.at[0, "state"] == "completed"
