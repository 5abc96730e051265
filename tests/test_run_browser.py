"""Comparing stored runs (agent_lab.experiments.compare) and the RunBrowser widget driven headless."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from agent_lab import RunConfig, train
from agent_lab.experiments.compare import (naming_fields, plot_seed_bands, run_histories, run_index, select_runs,
                                           varying_fields)
from agent_lab.widgets import RunBrowser

BASE = RunConfig(dataset="synthetic", model="vgg16", width=0.125, epochs=2, batch_size=32, lr=0.05, device="cpu",
                 train_subset=64, test_subset=32)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """SGD and AGENT, two seeds each (four runs of two epochs)."""
    out = tmp_path_factory.mktemp("browse")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for optimizer in ("sgd", "agent"):
            for seed in (0, 1):
                train(BASE.replace(optimizer=optimizer, seed=seed), out=out, progress=False)
    finally:
        torch.set_num_threads(threads)
    return out


def test_the_index_names_what_differs_and_selects_by_field(store):
    index = run_index(store)
    assert len(index) == 4 and set(index["status"]) == {"completed"}
    assert "optimizer" in varying_fields(index) and "seed" not in varying_fields(index)
    assert naming_fields(index, varying_fields(index)) == ["optimizer"]  # the rest follows from the optimizer
    agent = select_runs(index, {"optimizer": ["agent"]})
    assert len(agent) == 2 and set(agent["seed"]) == {0, 1}
    assert len(select_runs(index, {"optimizer": ["agent"], "seed": ["1"]})) == 1  # compared as text
    with pytest.raises(ValueError, match="colour: not a field of the stored runs; valid choices: .*optimizer"):
        select_runs(index, {"colour": ["red"]})


def test_seed_bands_are_the_mean_and_std_over_seeds(store):
    histories = run_histories(store, run_index(store))
    assert set(histories["group"]) == {"optimizer=sgd", "optimizer=agent"} and len(histories) == 8
    for x in ("epoch", "fwd_bwd"):
        fig = plot_seed_bands(histories, ("test_acc",), x=x)
        ax = fig.axes[0]
        for group, part in histories.groupby("group"):
            by_epoch = part.groupby("epoch")
            mean, std = by_epoch["test_acc"].mean().to_numpy(), by_epoch["test_acc"].std().to_numpy()
            xs = by_epoch[x].mean().to_numpy()
            lines = [line for line in ax.lines if len(line.get_xdata()) == 2
                     and np.allclose(line.get_xdata(), xs) and np.allclose(line.get_ydata(), mean)]
            assert lines, f"no mean line for {group} against {x}"
            bands = [c for c in ax.collections if len(c.get_paths())
                     and np.isclose(c.get_paths()[0].vertices[:, 1].max(), (mean + std).max())
                     and np.isclose(c.get_paths()[0].vertices[:, 1].min(), (mean - std).min())]
            assert bands, f"no ±std band for {group} against {x}"
    with pytest.raises(ValueError, match="x: 'steps' is invalid; valid choices: epoch, wall_time, fwd_bwd"):
        plot_seed_bands(histories, ("test_acc",), x="steps")
    with pytest.raises(ValueError, match="columns: accuracy not in the histories; valid choices: .*test_acc"):
        plot_seed_bands(histories, ("accuracy",))


def test_the_browser_filters_plots_and_reports(store, tmp_path):
    browser = RunBrowser(store, scale="smoke")
    assert "optimizer" in browser.filters and browser.count.value == "4 of 4 runs"
    browser.filters["optimizer"].value = ("agent",)
    assert browser.count.value == "2 of 4 runs"
    browser.columns.value = ("test_acc", "train_loss")
    browser.x.value = "wall_time"
    browser.plot_button.click()
    assert browser.image.value and browser.message.value == ""
    assert set(browser.histories["group"]) == {"optimizer=agent"} and len(browser.figure.axes) == 2
    browser.filters["optimizer"].value = ()
    assert browser.plot() is None and "no run matches" in browser.message.value
    empty = RunBrowser(tmp_path / "nothing")
    assert empty.index.empty and empty.plot() is None and empty.count.value == "0 of 0 runs"
