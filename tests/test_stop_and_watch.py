"""``train(stop=event, on_epoch=fn)``: a Stop from another thread ends a run as interrupted at its
next step, resumable to exactly the history of an uninterrupted run; ``on_epoch`` sees each saved row."""
from __future__ import annotations

import threading

import pandas as pd
import pytest
import torch

from agent_lab import RunConfig, train
from agent_lab.runs import load_run

CONFIG = RunConfig(dataset="synthetic", model="vgg16", width=0.125, epochs=3, batch_size=32, lr=0.05,
                   device="cpu", seed=5, train_subset=96, test_subset=32)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # conftest restores the count after each test


def test_stop_during_an_epoch_leaves_a_resumable_run_with_the_exact_history(tmp_path):
    reference = train(CONFIG, out=tmp_path / "straight", progress=False)
    stop, rows = threading.Event(), []

    def watch(row):
        rows.append(row)
        stop.set()  # as a Stop button pressed during epoch 2

    stopped = train(CONFIG, out=tmp_path / "stopped", progress=False, stop=stop, on_epoch=watch)
    assert stopped.status == "interrupted" and len(stopped.history) == 1
    assert [row["epoch"] for row in rows] == [1]
    assert rows[0]["test_acc"] == pytest.approx(stopped.history["test_acc"].iloc[0])
    assert load_run(stopped.run_dir).status == "interrupted"

    seen = []
    resumed = train(CONFIG, out=tmp_path / "stopped", progress=False, stop=threading.Event(), on_epoch=seen.append)
    assert resumed.status == "completed" and [row["epoch"] for row in seen] == [2, 3]
    columns = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "fwd_bwd"]
    pd.testing.assert_frame_equal(resumed.history[columns], reference.history[columns])


def test_a_stop_set_before_the_run_trains_nothing_and_a_cached_run_ignores_it(tmp_path):
    stop = threading.Event()
    stop.set()
    first = train(CONFIG.replace(epochs=1), out=tmp_path, progress=False, stop=stop)
    assert first.status == "interrupted" and first.history.empty
    done = train(CONFIG.replace(epochs=1), out=tmp_path, progress=False)
    assert done.status == "completed"
    assert train(CONFIG.replace(epochs=1), out=tmp_path, progress=False, stop=stop).status == "completed"
