import json

import pandas as pd
import pytest
import torch

import importlib

train_module = importlib.import_module("agent_lab.train")  # the package attribute `train` is the function
from agent_lab import ConfigError, RunConfig, load_run, train
from agent_lab.hooks import Callback
from agent_lab.runs import CHECKPOINT_FILE
from agent_lab.train import HISTORY_COLUMNS, evaluate_model, prepare

WALL_CLOCK = ["wall_time", "eval_time"]


def test_train_writes_a_complete_run_folder(tiny_config, tmp_path):
    result = train(tiny_config, out=tmp_path, progress=False)
    assert result.status == "completed"
    assert result.run_dir == tmp_path / tiny_config.run_name()
    files = {p.name for p in result.run_dir.iterdir() if not p.name.startswith(".")}  # .lock: the run's file lock
    assert files == {"config.json", "history.csv", "meta.json", "checkpoint.pt"}
    history = pd.read_csv(result.run_dir / "history.csv")
    assert list(history.columns) == list(HISTORY_COLUMNS)
    assert history["epoch"].tolist() == [1, 2, 3]
    # every training example costs one forward+backward per epoch in standard training
    assert history["fwd_bwd"].tolist() == [512, 1024, 1536]
    assert (history["density"] == 1.0).all()
    assert history["wall_time"].is_monotonic_increasing
    # milestone 0.5 of 24 steps -> step 12, inside epoch 2; the column holds each epoch's last lr
    assert history["lr"].tolist() == pytest.approx([0.05, 0.005, 0.005])
    assert history["test_acc"].between(0, 1).all()
    meta = json.loads((result.run_dir / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["seed"] == 3 and meta["device"] == "cpu"
    assert {"cudnn_allow_tf32", "cuda_matmul_allow_tf32", "float32_matmul_precision"} <= set(meta["precision"])
    assert RunConfig.from_dict(json.loads((result.run_dir / "config.json").read_text())) == tiny_config
    loaded = load_run(result.run_dir)
    pd.testing.assert_frame_equal(loaded.history, history)


def test_a_completed_run_is_served_from_the_store(tiny_config, tmp_path, monkeypatch):
    first = train(tiny_config.replace(epochs=1), out=tmp_path, progress=False)
    monkeypatch.setattr(train_module, "prepare", lambda config: pytest.fail("a cached run must not retrain"))
    again = train(tiny_config.replace(epochs=1), out=tmp_path, progress=False)
    assert again.status == "completed"
    pd.testing.assert_frame_equal(again.history, first.history)


def test_training_learns_the_synthetic_task(tiny_config, tmp_path):
    result = train(tiny_config.replace(epochs=4, lr_schedule="cosine"), out=tmp_path, progress=False)
    assert result.history["train_loss"].iloc[-1] < 0.5 * result.history["train_loss"].iloc[0]
    assert result.final["test_acc"] > 0.5  # 10 classes: chance is 0.1


def test_interrupted_then_resumed_history_equals_the_uninterrupted_one(tiny_config, tmp_path):
    straight = train(tiny_config, out=tmp_path / "a", progress=False)
    stopped = train(tiny_config, out=tmp_path / "b", progress=False, stop_after_epoch=1)
    assert stopped.status == "interrupted" and len(stopped.history) == 1
    assert load_run(stopped.run_dir).status == "interrupted"
    resumed = train(tiny_config, out=tmp_path / "b", progress=False)
    assert resumed.status == "completed"
    pd.testing.assert_frame_equal(resumed.history.drop(columns=WALL_CLOCK),
                                  straight.history.drop(columns=WALL_CLOCK), check_exact=True)
    a = torch.load(straight.run_dir / CHECKPOINT_FILE, weights_only=False)["model"]
    b = torch.load(resumed.run_dir / CHECKPOINT_FILE, weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class InterruptOnce(Callback):
    name = "interrupt-once"
    fired = False

    def before_optimizer_step(self, trainer, batch):
        if batch.epoch == 1 and batch.step == 3 and not InterruptOnce.fired:
            InterruptOnce.fired = True
            raise KeyboardInterrupt


def test_ctrl_c_mid_epoch_resumes_from_the_last_checkpoint_exactly(tiny_config, tmp_path, monkeypatch):
    straight = train(tiny_config, out=tmp_path / "a", progress=False)
    monkeypatch.setattr(train_module, "build_callbacks", lambda config, trainer: [InterruptOnce()])
    stopped = train(tiny_config, out=tmp_path / "b", progress=False)
    assert stopped.status == "interrupted" and len(stopped.history) == 1
    resumed = train(tiny_config, out=tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(resumed.history.drop(columns=WALL_CLOCK),
                                  straight.history.drop(columns=WALL_CLOCK), check_exact=True)


def test_nan_loss_ends_the_run_as_diverged_and_keeps_the_history(tiny_config, tmp_path):
    config = tiny_config.replace(lr=1e12, weight_decay=0.0, epochs=3)
    result = train(config, out=tmp_path, progress=False)
    assert result.status == "diverged"
    assert result.history["train_loss"].isna().iloc[-1]
    assert load_run(result.run_dir).status == "diverged"
    saved = pd.read_csv(result.run_dir / "history.csv")
    assert len(saved) == len(result.history) >= 1
    # a diverged run is a result: asking again returns it instead of diverging again
    assert train(config, out=tmp_path, progress=False).status == "diverged"


def test_bad_input_writes_nothing(tmp_path):
    out = tmp_path / "runs"
    with pytest.raises(ConfigError, match="RunConfig.data_root"):
        train(RunConfig(dataset="imagefolder", data_root=str(tmp_path / "missing")), out=out)
    with pytest.raises(ConfigError, match="RunConfig.model"):
        train({"dataset": "synthetic", "model": "alexnet"}, out=out)
    assert not out.exists()


def test_evaluate_model_restores_mode_and_counts_every_test_example(tiny_config):
    trainer, info = prepare(tiny_config)
    trainer.model.train()
    loss, acc = evaluate_model(trainer.model, trainer.test_loader)
    assert trainer.model.training
    assert 0 <= acc <= 1 and loss > 0
    assert trainer.test_loader.num_examples == info["test_examples"] == 256


def test_decoupled_weight_decay_and_adam_runs_complete(tiny_config, tmp_path):
    for changes in ({"weight_decay_mode": "decoupled"}, {"optimizer": "adam", "lr": 1e-3}):
        result = train(tiny_config.replace(epochs=1, **changes), out=tmp_path, progress=False)
        assert result.status == "completed"
