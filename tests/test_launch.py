"""Many runs at once: local workers and submitit jobs train each config exactly once."""
import json
import threading

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
