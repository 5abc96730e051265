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


@pytest.mark.parametrize("command", [[], ["train"], ["quickstart"], ["runs"]])
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
