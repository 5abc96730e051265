"""``evaluate_run`` / ``diagnose_run`` / ``snapshot_of_run`` and ``agent-lab evaluate|diagnose``
refuse a run that is not completed unless asked (``allow_partial`` / ``--allow-partial``), and
always record the checkpoint's epoch and the run's status in what they write."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

from agent_lab import RunConfig, load_run, train
from agent_lab.experiments.evaluate import SUMMARY_FILE as ROBUST_FILE
from agent_lab.experiments.evaluate import evaluate_run
from agent_lab.cli import main
from agent_lab.experiments.diagnose import SUMMARY_FILE as DIAGNOSTICS_FILE
from agent_lab.experiments import UnfinishedRunError, diagnose_run, snapshot_of_run
from agent_lab.runs import META_FILE, read_json, write_json

# conftest's TINY cut to 64 training images (2 steps of 32), 32 test images and two epochs.
CONFIG = RunConfig(dataset="synthetic", model="vgg16", width=0.125, epochs=2, batch_size=32, lr=0.05,
                   lr_schedule="step", lr_milestones=(0.5,), lr_factors=(0.1,), device="cpu", seed=3,
                   train_subset=64, test_subset=32)
EVALUATE = dict(attack="pgd10", restarts=1, limit=16, device="cpu", progress=False)
DIAGNOSE = dict(what="variance", batches=2, replicates=1, device="cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # conftest restores the count after each test


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """An interrupted run (1 of 2 epochs) and, resumed from a copy of it, the completed run."""
    out = tmp_path_factory.mktemp("partial_runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        interrupted = train(CONFIG, out=out / "interrupted", progress=False, stop_after_epoch=1)
        shutil.copytree(out / "interrupted", out / "completed")
        completed = train(CONFIG, out=out / "completed", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert (interrupted.status, completed.status) == ("interrupted", "completed")
    return {"interrupted": interrupted.run_dir, "completed": completed.run_dir}


@pytest.fixture
def run_copy(stored, tmp_path):
    def copy(kind: str):
        return shutil.copytree(stored[kind], tmp_path / kind / stored[kind].name)
    return copy


def _as_diverged(run_dir):
    """Mark a run diverged (as if its next epoch had diverged); its files and checkpoint are unchanged."""
    meta = read_json(run_dir / META_FILE)
    meta["status"] = "diverged"
    write_json(run_dir / META_FILE, meta)
    assert load_run(run_dir).status == "diverged"
    return run_dir


@pytest.mark.parametrize("call", [
    lambda run_dir: evaluate_run(run_dir, **EVALUATE),
    lambda run_dir: diagnose_run(run_dir, **DIAGNOSE),
    lambda run_dir: snapshot_of_run(run_dir, device="cpu"),
], ids=["evaluate_run", "diagnose_run", "snapshot_of_run"])
def test_an_interrupted_run_is_refused_in_one_line(run_copy, call):
    run_dir = run_copy("interrupted")
    with pytest.raises(UnfinishedRunError) as info:
        call(run_dir)
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message
    assert str(run_dir) in message and "interrupted" in message and "1 of 2 epochs" in message
    assert "agent-lab train" in message and "--allow-partial" in message and "allow_partial=True" in message
    assert (info.value.status, info.value.epochs_done, info.value.epochs) == ("interrupted", 1, 2)
    assert not (run_dir / ROBUST_FILE).exists() and not (run_dir / DIAGNOSTICS_FILE).exists()


def test_a_diverged_run_is_refused_with_its_own_remedy(run_copy):
    run_dir = _as_diverged(run_copy("interrupted"))
    with pytest.raises(UnfinishedRunError, match=r"is diverged: 1 of 2 epochs done; a diverged run cannot be finished"):
        diagnose_run(run_dir, **DIAGNOSE)
    table = diagnose_run(run_dir, **DIAGNOSE, allow_partial=True)
    assert table["run_status"].eq("diverged").all() and table["epoch"].eq(1).all()


def test_evaluate_run_of_an_interrupted_run_with_allow_partial_records_epoch_and_status(run_copy):
    run_dir = run_copy("interrupted")
    result = evaluate_run(run_dir, **EVALUATE, allow_partial=True)
    (summary,) = json.loads((run_dir / ROBUST_FILE).read_text()).values()
    assert summary["epoch"] == 1 and summary["run_status"] == "interrupted" and summary["n"] == result.n == 16
    per_example = pd.read_csv(run_dir / "robust_pgd10x1_eps8.csv")
    assert per_example["epoch"].eq(1).all() and per_example["run_status"].eq("interrupted").all()


def test_diagnose_run_of_an_interrupted_run_with_allow_partial_records_epoch_and_status(run_copy):
    run_dir = run_copy("interrupted")
    table = diagnose_run(run_dir, **DIAGNOSE, allow_partial=True)
    assert table["epoch"].eq(1).all() and table["run_status"].eq("interrupted").all()
    stored = json.loads((run_dir / DIAGNOSTICS_FILE).read_text())
    assert stored and all(row["epoch"] == 1 and row["run_status"] == "interrupted" for row in stored.values())
    _, _, info = snapshot_of_run(run_dir, device="cpu", allow_partial=True)
    assert (info["epoch"], info["run_status"]) == (1, "interrupted")


def test_a_completed_run_records_its_final_epoch_and_status(run_copy):
    run_dir = run_copy("completed")
    evaluate_run(run_dir, **EVALUATE)
    (summary,) = json.loads((run_dir / ROBUST_FILE).read_text()).values()
    assert (summary["epoch"], summary["run_status"]) == (2, "completed")
    table = diagnose_run(run_dir, **DIAGNOSE)
    assert table["epoch"].eq(2).all() and table["run_status"].eq("completed").all()
    stored = json.loads((run_dir / DIAGNOSTICS_FILE).read_text())
    assert all((row["epoch"], row["run_status"]) == (2, "completed") for row in stored.values())


@pytest.mark.parametrize("command, argv", [
    ("evaluate", ["--attack", "pgd10", "--restarts", "1", "--limit", "16", "--quiet"]),
    ("diagnose", ["--what", "variance", "--batches", "2", "--replicates", "1"]),
])
def test_cli_refuses_an_unfinished_run_without_the_flag(run_copy, capsys, command, argv):
    run_dir = run_copy("interrupted")
    assert main([command, "--run", str(run_dir), "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agent-lab: error: run ") and "\n" not in err
    assert "interrupted" in err and "1 of 2 epochs" in err and "--allow-partial" in err
    assert main([command, "--run", str(run_dir), "--device", "cpu", *argv, "--allow-partial"]) == 0
    summary = json.loads((run_dir / (ROBUST_FILE if command == "evaluate" else DIAGNOSTICS_FILE)).read_text())
    assert all((row["epoch"], row["run_status"]) == (1, "interrupted") for row in summary.values())


def test_allow_partial_must_be_a_bool(run_copy):
    with pytest.raises(ValueError, match="allow_partial"):
        diagnose_run(run_copy("interrupted"), **DIAGNOSE, allow_partial="yes")
