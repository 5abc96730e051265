import subprocess
import sys

import pandas as pd
import pytest

from agent_lab.cli import main
from agent_lab.train import HISTORY_COLUMNS


def test_acceptance_command_trains_vgg16_on_the_bundled_subset(tmp_path):
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "agent_lab.cli", "train", "--dataset", "cifar10-mini", "--model", "vgg16",
               "--width", "0.25", "--epochs", "2", "--out", str(out), "--quiet", "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (run_dir,) = out.iterdir()
    history = pd.read_csv(run_dir / "history.csv")
    assert set(HISTORY_COLUMNS) <= set(history.columns) and len(history) == 2
    assert history["fwd_bwd"].tolist() == [4000, 8000]
    assert "status: completed" in done.stdout


def test_flags_are_the_config_fields(tmp_path, capsys):
    code = main(["train", "--dataset", "synthetic", "--model", "resnet18", "--width", "0.125", "--epochs", "1",
                 "--batch_size", "128", "--lr_schedule", "step", "--lr_milestones", "0.5", "--lr_factors", "0.2",
                 "--no-augment", "--out", str(tmp_path), "--quiet", "--device", "cpu"])
    assert code == 0
    (run_dir,) = tmp_path.iterdir()
    assert "resnet18-w0.125_synthetic" in run_dir.name
    assert "status: completed" in capsys.readouterr().out


@pytest.mark.parametrize("argv, field", [
    (["--model", "vgg17"], "RunConfig.model"),
    (["--dataset", "mnist"], "RunConfig.dataset"),
    (["--sparsity", "1.5"], "RunConfig.sparsity"),
    (["--lr", "-1"], "RunConfig.lr"),
    (["--epochs", "0"], "RunConfig.epochs"),
    (["--dataset", "imagefolder", "--data_root", "/nonexistent/folder"], "RunConfig.data_root"),
])
def test_bad_flags_give_one_line_errors_and_write_nothing(argv, field, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agent-lab: error: " + field) and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize("command", [[], ["train"], ["quickstart"], ["runs"], ["evaluate"], ["hydra"], ["diagnose"],
                                     ["repair"], ["list"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: agent-lab" in capsys.readouterr().out


def test_runs_lists_the_store(tmp_path, capsys):
    main(["train", "--dataset", "synthetic", "--width", "0.125", "--epochs", "1", "--out", str(tmp_path),
          "--quiet", "--device", "cpu"])
    capsys.readouterr()
    assert main(["runs", "--out", str(tmp_path)]) == 0
    assert "completed" in capsys.readouterr().out


def test_evaluate_attacks_a_stored_run(tmp_path, capsys):
    main(["train", "--dataset", "synthetic", "--width", "0.125", "--epochs", "1", "--test_subset", "64",
          "--out", str(tmp_path), "--quiet", "--device", "cpu"])
    (run_dir,) = tmp_path.iterdir()
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run_dir), "--attack", "pgd20", "--restarts", "2", "--limit", "40",
                 "--quiet", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "pgd20 x 2 restarts" in out and "robust accuracy" in out
    per_example = pd.read_csv(run_dir / "robust_pgd20x2_eps8.csv")
    assert len(per_example) == 40 and (per_example["robust"] <= per_example["clean_correct"]).all()
    summary = pd.read_json(run_dir / "robust_eval.json", typ="series")["robust_pgd20x2_eps8"]
    assert summary["n"] == 40 and summary["robust_acc"] == pytest.approx(per_example["robust"].mean())
    assert summary["clean_acc"] == pytest.approx(per_example["clean_correct"].mean()) and summary["steps"] == 20


@pytest.mark.parametrize("argv, message", [
    (["--attack", "pgd7"], "invalid choice"),
    (["--restarts", "0"], "restarts"),
    (["--epsilon", "2"], "epsilon"),
])
def test_evaluate_bad_arguments(argv, message, tmp_path, capsys):
    main(["train", "--dataset", "synthetic", "--width", "0.125", "--epochs", "1", "--test_subset", "32",
          "--out", str(tmp_path), "--quiet", "--device", "cpu"])
    (run_dir,) = tmp_path.iterdir()
    capsys.readouterr()
    try:
        code = main(["evaluate", "--run", str(run_dir), "--quiet", "--device", "cpu", *argv])
    except SystemExit as exit_:  # argparse rejects unknown choices itself
        code = exit_.code
    assert code == 2 and message in capsys.readouterr().err
    assert not (run_dir / "robust_eval.json").exists()


def test_evaluate_of_a_missing_run(tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path / "nothing"), "--quiet"]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_hydra_command_runs_three_phases(tmp_path, capsys):
    code = main(["hydra", "--dataset", "synthetic", "--width", "0.125", "--epochs", "1", "--batch_size", "64",
                 "--train_subset", "128", "--test_subset", "64", "--attack_steps", "1", "--target_sparsity", "0.9",
                 "--out", str(tmp_path), "--quiet", "--device", "cpu"])
    assert code == 0
    (run_dir,) = tmp_path.iterdir()
    history = pd.read_csv(run_dir / "history.csv")
    assert history["phase"].tolist() == ["pretrain", "prune", "finetune"]
    assert history["density"].iloc[-1] == pytest.approx(0.1, abs=1e-4)
    assert "status: completed" in capsys.readouterr().out


def test_hydra_command_bad_target(tmp_path, capsys):
    assert main(["hydra", "--dataset", "synthetic", "--target_sparsity", "1.5", "--out", str(tmp_path / "r"),
                 "--quiet"]) == 2
    assert "sparsity" in capsys.readouterr().err and not (tmp_path / "r").exists()
