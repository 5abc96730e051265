"""The run store under faults and misuse: damaged files, kills, concurrent processes, divergence."""
import importlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from agent_lab.cli import main
from agent_lab.runs import (DamagedRunError, RunLock, RunLockedError, RunStoreError, list_runs, load_run, read_json,
                            repair_run)
from agent_lab.train import train

train_module = importlib.import_module("agent_lab.train")  # the package attribute `train` is the function
WALL_CLOCK = ["wall_time", "eval_time"]
SPARSE = dict(pipeline="set", sparsity=0.9, update_every=4)


def _same_history(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns=WALL_CLOCK), b.drop(columns=WALL_CLOCK), check_exact=True)


@pytest.fixture
def finished(tiny_config, tmp_path):
    """A completed sparse run (so it has a side table) and a pristine copy of its history."""
    result = train(tiny_config.replace(**SPARSE), out=tmp_path, progress=False)
    assert result.status == "completed"
    return result


# -- a finished run proves its files -------------------------------------------------------------
def test_meta_records_size_and_sha256_of_every_file(finished):
    meta = read_json(finished.run_dir / "meta.json")
    assert set(meta["files"]) == {"checkpoint.pt", "history.csv", "layer_density.csv"}
    for name, digest in meta["files"].items():
        assert digest["bytes"] == (finished.run_dir / name).stat().st_size
    assert len(pd.read_csv(finished.run_dir / "layer_density.csv")) == 3


def test_truncated_checkpoint_of_a_completed_run_is_refused_with_the_remedy(finished, tmp_path, capsys):
    path = finished.run_dir / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DamagedRunError, match=r"checkpoint\.pt is damaged.*--no-resume") as info:
        load_run(finished.run_dir)
    assert not info.value.repairable
    with pytest.raises(DamagedRunError, match="checkpoint.pt"):
        train(finished.config, out=tmp_path, progress=False)
    with pytest.raises(DamagedRunError, match="checkpoint.pt"):
        repair_run(finished.run_dir)
    fresh = train(finished.config, out=tmp_path, progress=False, resume=False)  # the remedy works
    _same_history(fresh.history, finished.history)


def test_a_checkpoint_with_flipped_bytes_but_the_right_size_is_caught_by_its_sha256(finished, tmp_path):
    path = finished.run_dir / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    load_run(finished.run_dir)  # the quick check (sizes) used for listings does not hash checkpoints
    with pytest.raises(DamagedRunError, match="SHA-256"):
        load_run(finished.run_dir, verify="full")
    with pytest.raises(DamagedRunError, match="checkpoint.pt"):
        train(finished.config, out=tmp_path, progress=False)


def test_history_missing_its_last_row_is_refused_then_rebuilt_from_the_checkpoint(finished, tmp_path):
    path = finished.run_dir / "history.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))
    with pytest.raises(DamagedRunError, match=r"history\.csv is damaged.*agent-lab repair") as info:
        load_run(finished.run_dir)
    assert info.value.repairable
    served = train(finished.config, out=tmp_path, progress=False)  # resuming repairs it, without training
    assert served.status == "completed"
    _same_history(served.history, finished.history)
    _same_history(load_run(finished.run_dir, verify="full").history, finished.history)


def test_an_edited_history_value_is_refused_and_repaired_exactly(finished, capsys):
    path = finished.run_dir / "history.csv"
    edited = pd.read_csv(path)
    edited.loc[2, "test_acc"] = 0.99
    edited.to_csv(path, index=False)
    with pytest.raises(DamagedRunError, match="history.csv"):
        load_run(finished.run_dir)
    assert main(["repair", "--run", str(finished.run_dir)]) == 0
    assert "rewritten from the checkpoint" in capsys.readouterr().out
    pd.testing.assert_frame_equal(load_run(finished.run_dir, verify="full").history, finished.history)


def test_a_stale_side_table_is_refused_and_repaired(finished):
    path = finished.run_dir / "layer_density.csv"
    original = pd.read_csv(path)
    original.iloc[:2].to_csv(path, index=False)
    with pytest.raises(DamagedRunError, match="layer_density.csv"):
        load_run(finished.run_dir)
    repair_run(finished.run_dir)
    pd.testing.assert_frame_equal(pd.read_csv(path), original)


def test_unreadable_meta_names_the_file_and_resume_rebuilds_it(finished, tmp_path, capsys):
    path = finished.run_dir / "meta.json"
    path.write_text(path.read_text()[:40])
    with pytest.raises(DamagedRunError, match=r"meta\.json cannot be read"):
        load_run(finished.run_dir)
    assert main(["evaluate", "--run", str(finished.run_dir), "--limit", "8", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "meta.json" in err and "\n" not in err
    listed = list_runs(tmp_path)
    assert listed["status"].tolist() == ["damaged"] and "meta.json" in listed["problem"][0]
    served = train(finished.config, out=tmp_path, progress=False)
    assert served.status == "completed"
    _same_history(served.history, finished.history)
    assert load_run(finished.run_dir, verify="full").status == "completed"


def test_corrupt_checkpoint_of_an_interrupted_run_says_start_over(tmp_path, capsys):
    from agent_lab import RunConfig

    config = RunConfig(dataset="synthetic", width=0.125, epochs=2, batch_size=64, device="cpu")
    argv = ["train", "--dataset", "synthetic", "--width", "0.125", "--epochs", "2", "--batch_size", "64",
            "--out", str(tmp_path), "--quiet", "--device", "cpu"]
    stopped = train(config, out=tmp_path, progress=False, stop_after_epoch=1)
    (stopped.run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DamagedRunError, match=r"checkpoint\.pt cannot be read.*--no-resume"):
        train(config, out=tmp_path, progress=False)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "checkpoint.pt" in err and "--no-resume" in err and "\n" not in err
    assert main([*argv, "--no-resume"]) == 0


# -- misuse ----------------------------------------------------------------------------------------
def test_out_naming_a_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert main(["train", "--dataset", "synthetic", "--width", "0.125", "--epochs", "1", "--out", str(target),
                 "--quiet", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agent-lab: error: out:") and "is a file" in err and "\n" not in err
    assert target.read_text() == "keep me"
    with pytest.raises(RunStoreError, match="is a file"):
        train({"dataset": "synthetic"}, out=target / "runs")


def test_a_width_that_cannot_fit_is_refused_before_allocating(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "--dataset", "synthetic", "--width", "1e9", "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agent-lab: error: RunConfig.width: 1e+09") and "choose a width up to" in err
    assert "\n" not in err and not out.exists()


@pytest.mark.parametrize("timeout", [-1, float("nan"), "soon", True])
def test_a_bad_lock_timeout_is_refused_before_anything_is_written(tiny_config, tmp_path, timeout):
    with pytest.raises(ValueError, match="lock_timeout"):
        train(tiny_config, out=tmp_path / "runs", progress=False, lock_timeout=timeout)
    assert not (tmp_path / "runs").exists()


# -- divergence ------------------------------------------------------------------------------------
def test_an_exploding_but_finite_loss_ends_the_run_as_diverged(tiny_config, tmp_path):
    config = tiny_config.replace(lr=1e6, weight_decay=0.0)
    result = train(config, out=tmp_path, progress=False)
    assert result.status == "diverged"
    assert "limit" in result.meta["stop_reason"]
    assert len(result.history) == 1  # caught within the first epoch
    assert load_run(result.run_dir, verify="full").status == "diverged"
    assert train(config, out=tmp_path, progress=False).status == "diverged"  # a result: served, not retrained
    (result.run_dir / "history.csv").write_text("epoch\n")
    repaired = repair_run(result.run_dir)  # the diverging epoch's row is kept in meta.json, not the checkpoint
    assert repaired.status == "diverged"
    pd.testing.assert_frame_equal(repaired.history, result.history)


def test_a_non_finite_test_loss_ends_the_run_as_diverged(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module.Trainer, "evaluate", lambda self: (float("nan"), 0.1))
    result = train(tiny_config, out=tmp_path, progress=False)
    assert result.status == "diverged" and "test loss after epoch 1 is nan" in result.meta["stop_reason"]
    assert len(result.history) == 1 and result.history["test_loss"].isna().all()
    assert not (result.run_dir / "checkpoint.pt").exists() or \
        load_run(result.run_dir, verify="full").status == "diverged"


def test_a_large_but_finite_test_loss_is_not_divergence(tiny_config, tmp_path, monkeypatch):
    # early in training BN's running statistics lag the weights: test losses in the hundreds are normal
    monkeypatch.setattr(train_module.Trainer, "evaluate", lambda self: (1e4, 0.1))
    assert train(tiny_config, out=tmp_path, progress=False).status == "completed"


def test_divergence_threshold_is_stated_relative_to_chance():
    assert train_module.divergence_threshold(10) == pytest.approx(100 * 2.302585, rel=1e-6)
    assert train_module.divergence_threshold(100) > train_module.divergence_threshold(10)


# -- locks -----------------------------------------------------------------------------------------
def test_a_held_lock_is_refused_at_once_or_waited_for(tiny_config, tmp_path):
    run_dir = tmp_path / tiny_config.run_name()
    holder = RunLock(run_dir).acquire(timeout=0)
    try:
        assert load_run.__module__  # the folder has no run yet, only the lock
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            train(tiny_config, out=tmp_path, progress=False, lock_timeout=0)
        with pytest.raises(RunLockedError, match="still in use after 0.2 s"):
            train(tiny_config, out=tmp_path, progress=False, lock_timeout=0.2)
        messages: list[str] = []
        done: dict = {}
        waiter = threading.Thread(target=lambda: done.setdefault(
            "result", train(tiny_config, out=tmp_path, progress=False)))
        original = train_module.tqdm.write
        train_module.tqdm.write = lambda text, *a, **k: messages.append(text)
        try:
            waiter.start()
            time.sleep(1.5)
            assert waiter.is_alive() and any("waiting" in m for m in messages)
        finally:
            holder.release()
            waiter.join(timeout=120)
            train_module.tqdm.write = original
    finally:
        holder.release()
    assert done["result"].status == "completed"


def _train_argv(out: Path) -> list[str]:
    return ["train", "--dataset", "synthetic", "--width", "0.125", "--epochs", "2", "--batch_size", "64",
            "--out", str(out), "--quiet", "--device", "cpu"]


def test_two_processes_on_one_config_train_once(tmp_path):
    from agent_lab import RunConfig

    out, release = tmp_path / "runs", tmp_path / "release"
    run_dir = out / RunConfig(dataset="synthetic", width=0.125, epochs=2, batch_size=64).run_name()
    # The first process holds the lock until the test releases it (its epochs wait for a file).
    gated = textwrap.dedent(f"""
        import importlib, pathlib, sys, time
        train_module = importlib.import_module("agent_lab.train")
        train_epoch = train_module.Trainer.train_epoch

        def gated(self, progress=False):
            while not pathlib.Path({str(release)!r}).exists():
                time.sleep(0.05)
            return train_epoch(self, progress)

        train_module.Trainer.train_epoch = gated
        from agent_lab.cli import main
        sys.exit(main({_train_argv(out)!r}))
    """)
    cli = [sys.executable, "-m", "agent_lab.cli", *_train_argv(out)]
    unbuffered = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen([sys.executable, "-c", gated], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not ((run_dir / "owner.json").exists() and (run_dir / "meta.json").exists()):
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.05)
        assert list_runs(out)["status"].tolist() == ["running"]
        refused = subprocess.run([*cli, "--lock-timeout", "0"], capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2 and f"pid {first.pid}" in refused.stderr, refused.stderr
        second = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=unbuffered)
        assert "waiting for it to finish" in second.stdout.readline()  # it says so before it waits
    finally:
        release.touch()
    first_out, first_err = first.communicate(timeout=600)
    second_out, second_err = second.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, (first_err, second_err)
    assert "waiting" not in first_out
    table = lambda text: text.split("status:")[0].splitlines()[-3:]  # noqa: E731  the printed history
    assert table(second_out) == table(first_out)  # the waiter shows the result the first one trained
    assert len(pd.read_csv(run_dir / "history.csv")) == 2
    assert load_run(run_dir, verify="full").status == "completed"
    assert not (run_dir / "owner.json").exists()


# -- kill -9 during the last epoch's writes --------------------------------------------------------
def test_kill_during_the_last_epochs_writes_leaves_a_run_that_resumes_consistently(tiny_config, tmp_path):
    config = tiny_config.replace(**SPARSE)
    straight = train(config, out=tmp_path / "straight", progress=False)
    out = tmp_path / "killed"
    # A process that dies like kill -9 right after writing the last checkpoint: before the history,
    # the side tables and meta.json of that epoch (and with a temporary file left behind).
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    script = textwrap.dedent(f"""
        import json, os
        from agent_lab import RunConfig, runs, train

        write_csv = runs.write_csv

        def dying(path, table):
            if path.name == "history.csv" and len(table) == 3:  # the last epoch's save, after its checkpoint
                (path.parent / ".history.csv.leftover.tmp").write_text("half")
                os._exit(9)
            return write_csv(path, table)

        runs.write_csv = dying
        config = RunConfig.from_dict(json.loads(open({str(tmp_path / "config.json")!r}).read()))
        train(config, out={str(out)!r}, progress=False)
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert killed.returncode == 9, killed.stderr
    run_dir = out / config.run_name()
    meta = read_json(run_dir / "meta.json")
    assert meta["status"] == "running" and meta["epochs_done"] == 2  # the checkpoint is one epoch ahead
    assert len(pd.read_csv(run_dir / "layer_density.csv")) == 2
    assert load_run(run_dir).status == "interrupted"
    resumed = train(config, out=out, progress=False)
    assert resumed.status == "completed"
    _same_history(resumed.history, straight.history)
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "layer_density.csv"),
                                  pd.read_csv(straight.run_dir / "layer_density.csv"))
    assert not list(run_dir.glob(".*.tmp"))
    assert load_run(run_dir, verify="full").status == "completed"
    assert json.loads((run_dir / "meta.json").read_text())["files"].keys() >= {"layer_density.csv"}


def test_a_resume_at_another_thread_count_is_recorded_and_said(tiny_config, tmp_path, capsys):
    import torch

    torch.set_num_threads(1)
    train(tiny_config, out=tmp_path, progress=False, stop_after_epoch=1)
    same = train(tiny_config, out=tmp_path, progress=False, stop_after_epoch=2)  # same settings: nothing to say
    assert "resumes" not in read_json(same.run_dir / "meta.json")
    assert "not bit-identical" not in capsys.readouterr().out
    torch.set_num_threads(2)  # conftest restores the count after the test
    done = train(tiny_config, out=tmp_path, progress=False)
    meta = read_json(done.run_dir / "meta.json")
    assert meta["resumes"] == [{"epoch": 2, "changed": {"torch_num_threads": [1, 2]}}]
    assert meta["sessions"] == 3 and meta["torch_num_threads"] == 2
    out = capsys.readouterr().out
    assert "resumed after epoch 2 with torch_num_threads 1 -> 2" in out and "not bit-identical" in out
