"""Many runs at once: local workers and submitit jobs train each config exactly once."""
import json
import threading
import time

import pytest

from agent_lab import RunConfig
from agent_lab.cli import main
from agent_lab.experiments.launch import launch_local, launch_submitit

CONFIGS = [RunConfig(dataset="synthetic", model="vgg16", width=0.0625, epochs=1, batch_size=128, device="cpu", seed=s,
                     lr=0.05) for s in range(4)]


def _sessions(out):
    return {path.parent.name: json.loads(path.read_text())["sessions"] for path in out.glob("*/meta.json")}


@pytest.mark.slow
def test_two_local_launchers_started_together_train_each_config_once(tmp_path):
    results = {}

    def launcher(tag):
        results[tag] = launch_local(CONFIGS, tmp_path, jobs=2, threads=1)

    threads = [threading.Thread(target=launcher, args=(tag,)) for tag in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = {c.run_name() for c in CONFIGS}
    assert set(results["a"]) == set(results["b"]) == names
    assert set(results["a"].values()) == {"completed"}
    assert _sessions(tmp_path) == {name: 1 for name in names}  # 4 workers, each config trained once


def test_bad_job_counts_are_refused():
    with pytest.raises(ValueError, match="jobs: 0 is invalid"):
        launch_local(CONFIGS, "runs", jobs=0)


def test_submitit_jobs_train_and_a_requeued_job_resumes(tmp_path):
    pytest.importorskip("submitit")
    statuses = launch_submitit(CONFIGS[:2], tmp_path / "runs", folder=tmp_path / "jobs", cluster="debug")
    assert statuses == {c.run_name(): "completed" for c in CONFIGS[:2]}
    # a pre-empted job: interrupted after its first epoch, then requeued by submitit's checkpoint hook
    from agent_lab import train
    from agent_lab.experiments.launch import TrainJob
    config = CONFIGS[2].replace(epochs=2)
    train(config, out=tmp_path / "runs", progress=False, stop_after_epoch=1)
    requeued = TrainJob(config.to_dict(), str(tmp_path / "runs")).checkpoint()
    assert requeued.function(*requeued.args, **requeued.kwargs) == "completed"
    assert _sessions(tmp_path / "runs")[config.run_name()] == 2  # resumed, not started over


@pytest.mark.slow
def test_reproduce_with_the_local_launcher_trains_then_renders(tmp_path, capsys):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    args = ["reproduce", "fig2", "--scale", "smoke", "--out", str(out), "--figures", str(figures), "--quiet",
            "--launcher", "local", "--jobs", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "run(s) to train through launcher local" in printed and "[completed]" in printed
    assert (figures / "smoke" / "fig2").is_dir() and set(_sessions(out).values()) == {1}


# -- queued / running / done, as list and the panel see them --------------------------------------
def test_a_queue_marker_says_queued_until_the_trainer_takes_the_lock(tmp_path):
    import subprocess
    import sys

    from agent_lab.runs import RunLock, mark_queued, queue_marker_path, queued_entry, run_dir_for

    run_dir = run_dir_for(CONFIGS[0], tmp_path)
    assert queued_entry(run_dir) == {}
    mark_queued(run_dir, "local", pid=__import__("os").getpid())
    assert queued_entry(run_dir)["launcher"] == "local"
    RunLock(run_dir).acquire(timeout=0, notify=None).release()  # the trainer starts: out of the queue
    assert not queue_marker_path(run_dir).exists() and queued_entry(run_dir) == {}

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    mark_queued(run_dir, "local", pid=int(ended.stdout))  # its pool is gone: the entry counts for nothing
    assert queue_marker_path(run_dir).exists() and queued_entry(run_dir) == {}

    jobs = tmp_path / "jobs"
    jobs.mkdir()
    mark_queued(run_dir, "submitit", folder=str(jobs), job_id="4242")
    assert queued_entry(run_dir)["job_id"] == "4242"
    (jobs / "4242_0_result.pkl").write_bytes(b"")  # the job ended without starting the run
    assert queued_entry(run_dir) == {}


def test_list_counts_queued_and_running_runs(tmp_path, capsys):
    from agent_lab.paper.reproduce import plan, run_state
    from agent_lab.runs import RunLock, mark_queued, run_dir_for

    out = tmp_path / "runs"
    the_plan = plan(["fig7"], "smoke")
    first, second, *_ = the_plan.distinct.values()
    mark_queued(run_dir_for(first.config, out), "submitit", folder=str(tmp_path), job_id="7")
    holder = RunLock(run_dir_for(second.config, out)).acquire(timeout=0, notify=None)
    try:
        assert run_state(first, out) == "queued" and run_state(second, out) == "running"
        assert main(["list", "--scale", "smoke", "--out", str(out)]) == 0
    finally:
        holder.release()
    line = next(line for line in capsys.readouterr().out.split("fig7 ", 1)[1].splitlines() if "runs:" in line)
    assert ", 1 queued, 1 running, " in line


def test_launch_refuses_an_unknown_launcher():
    from agent_lab.experiments.launch import launch

    with pytest.raises(ValueError, match="launcher: 'slurm' is invalid; valid choices: local, submitit"):
        launch(CONFIGS, "runs", "slurm")


def test_the_panel_job_with_submitit_jobs_reports_them_as_it_would_its_own(tmp_path):
    pytest.importorskip("submitit")
    from agent_lab.paper.job import ReproduceJob

    job = ReproduceJob(["fig7"], "smoke", labels=["BSR-Net"], out=tmp_path / "runs", figures=tmp_path / "figures",
                       launcher="submitit", launcher_options={"cluster": "debug", "folder": tmp_path / "jobs"},
                       poll_seconds=0.05)
    kinds = []
    job.listeners.append(lambda event: kinds.append(event.kind))
    results = job.run()
    assert kinds == ["start", "epoch", "epoch", "done"] * 2  # the store watched: same events as in-process
    assert set(job.status["state"]) == {"completed"} and list(results) == ["fig7"]
    assert len(job.live_curves()) == 4 and not list((tmp_path / "runs" / ".queue").glob("*.json"))
    assert set(_sessions(tmp_path / "runs").values()) == {1}


def test_launch_options_are_checked_when_the_job_is_made(tmp_path):
    from agent_lab.paper.job import ReproduceJob

    with pytest.raises(ValueError, match="launcher: 'ray' is invalid; valid choices: none, local, submitit"):
        ReproduceJob(["fig7"], "smoke", out=tmp_path, launcher="ray")
    with pytest.raises(ValueError, match="jobs: 0 is invalid"):
        ReproduceJob(["fig7"], "smoke", out=tmp_path, launcher="local", jobs=0)


@pytest.mark.slow
def test_the_panel_trains_with_local_workers_and_stop_cancels_them(tmp_path):
    from agent_lab.widgets import ArtifactPanel

    panel = ArtifactPanel("fig7", "smoke", out=tmp_path / "runs", figures=tmp_path / "figures")
    panel.methods.value = ("BSR-Net",)
    panel.launcher.value, panel.jobs.value = "local", 2
    assert panel.job.launcher == "local" and panel.job.jobs == 2
    panel.job.poll_seconds = 0.1
    panel.run(wait=True)
    assert "done" in panel.message.value, panel.message.value
    assert set(panel.job.status["state"]) == {"completed"} and len(panel.results.children) == 1
    assert set(_sessions(tmp_path / "runs").values()) == {1}

    longer = ArtifactPanel("fig7", "smoke", seeds=2, out=tmp_path / "runs", figures=tmp_path / "figures")
    longer.methods.value = ("BSR-Net",)
    longer.launcher.value = "local"
    longer.job.poll_seconds = 0.1
    assert sorted(longer.job.status["state"]) == ["cached", "cached", "missing", "missing"]
    longer.run()
    deadline = time.monotonic() + 120
    while "training" not in set(longer.job.status["state"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    longer.stop()
    longer.wait(60)
    assert "stopped" in longer.message.value and not longer.busy
    assert not list((tmp_path / "runs" / ".queue").glob("*.json"))  # the cancelled queue leaves no marker
    longer.run(wait=True)  # resumes what the cancelled worker left
    assert set(longer.job.status["state"]) <= {"cached", "completed"}


def test_detached_submitit_jobs_show_as_queued_and_are_not_submitted_twice(tmp_path, capsys):
    pytest.importorskip("submitit")
    out = tmp_path / "runs"
    args = ["reproduce", "fig7", "--scale", "smoke", "--methods", "BSR-Net", "--out", str(out), "--quiet",
            "--launcher", "submitit", "--cluster", "debug", "--detach"]
    assert main(args) == 0  # debug jobs run only when waited on: these stay queued
    printed = capsys.readouterr().out
    assert "2 run(s) to train through launcher submitit" in printed and printed.count("[queued: job ") == 2
    assert main(["list", "--scale", "smoke", "--out", str(out)]) == 0
    assert ", 2 queued, " in capsys.readouterr().out.split("fig7 ", 1)[1].split("\nfig", 1)[0]
    assert main(args) == 0
    assert "0 run(s) to train through launcher submitit" in capsys.readouterr().out
    assert main(["reproduce", "fig7", "--scale", "smoke", "--out", str(out), "--detach"]) != 0
    assert "--detach: only with --launcher submitit" in capsys.readouterr().err
