"""agent_lab.experiments.sweep: gradient variance/correlation against sparsity (Fig. 1, Table 7)."""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from agent_lab import RunConfig  # noqa: E402
from agent_lab.config import ConfigError  # noqa: E402
from agent_lab.experiments import sweep as sweep_module  # noqa: E402
from agent_lab.experiments.sweep import (PAPER_PIPELINES, PAPER_SPARSITIES, correlation_table,  # noqa: E402
                                         plot_sparsity_sweep, sparsity_sweep, sweep_configs, sweep_trend)
from agent_lab.runs import RunResult  # noqa: E402

BASE = RunConfig(dataset="synthetic", model="vgg16", width=0.125, epochs=1, batch_size=64, lr=0.05, device="cpu",
                 pipeline="rigl", sparsity=0.9, update_every=2)
PIPELINES = ("rigl", "set")
SPARSITIES = (0.0, 0.5, 0.9)
METRICS = ("grad_var", "grad_var_trace", "grad_corr")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One tiny sweep for the module: (frame, out folder, number of train calls)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("sweep")
    calls = []
    real_train = sweep_module.train

    def counting_train(config, *args, **kwargs):
        calls.append(config)
        return real_train(config, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep_module, "train", counting_train)
        frame = sparsity_sweep(BASE, out, pipelines=PIPELINES, sparsities=SPARSITIES, batches=3, replicates=2,
                               progress=False)
    torch.set_num_threads(threads)
    yield frame, out, calls
    plt.close("all")


def _hand_frame(points: dict[str, dict[str, dict[float, tuple[float, float]]]]) -> pd.DataFrame:
    """A sweep-shaped frame from {pipeline: {metric: {sparsity: (value, std)}}}."""
    rows = [{"run": f"{pipeline}{sparsity:g}", "pipeline": pipeline, "sparsity": sparsity, "metric": metric,
             "value": value, "std": std, "replicates": 3}
            for pipeline, metrics in points.items() for metric, series in metrics.items()
            for sparsity, (value, std) in series.items()]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------
# Configs and input validation
# ------------------------------------------------------------------------------------------------

def test_sweep_configs_share_one_dense_config():
    plan = sweep_configs(BASE, PIPELINES, SPARSITIES)
    assert [(p, s) for p, s, _ in plan] == [(p, s) for p in PIPELINES for s in SPARSITIES]
    dense = [c for _, s, c in plan if s == 0.0]
    assert len(dense) == 2 and dense[0] == dense[1]
    assert dense[0].pipeline == "dense" and dense[0].sparsity == 0.0 and dense[0].update_every is None
    assert dense[0].config_hash() == BASE.replace(pipeline="dense", sparsity=0.0, update_every=None).config_hash()
    for pipeline, sparsity, config in plan:
        if sparsity > 0:
            assert (config.pipeline, config.sparsity, config.update_every) == (pipeline, sparsity, 2)
            assert config.replace(pipeline=BASE.pipeline, sparsity=BASE.sparsity) == BASE
    assert len({c for _, _, c in plan}) == 5


def test_sweep_configs_defaults_and_unscheduled_pipelines():
    plan = sweep_configs(BASE)
    assert [(p, s) for p, s, _ in plan] == [(p, s) for p in PAPER_PIPELINES for s in PAPER_SPARSITIES]
    static = sweep_configs(BASE, ("static", "bsr"), (0.9,))
    assert all(c.update_every is None and c.pipeline == p for p, _, c in static)


@pytest.mark.parametrize("kwargs, name", [
    ({"pipelines": ("rigl", "dense")}, "pipelines"),
    ({"pipelines": ("rigl", "magnitude")}, "pipelines"),
    ({"pipelines": ()}, "pipelines"),
    ({"pipelines": ("rigl", "rigl")}, "pipelines"),
    ({"sparsities": (0.0, 1.0)}, "sparsities"),
    ({"sparsities": (-0.1, 0.5)}, "sparsities"),
    ({"sparsities": (0.5, float("nan"))}, "sparsities"),
    ({"sparsities": ("0.5",)}, "sparsities"),
    ({"sparsities": (0.5, 0.5)}, "sparsities"),
    ({"what": ("variance", "hessian")}, "what"),
    ({"batches": 1}, "batches"),
    ({"replicates": 0}, "replicates"),
    ({"sigma": -0.1}, "sigma"),
    ({"variance_sigma": float("inf")}, "variance_sigma"),
    ({"seed": -1}, "seed"),
])
def test_bad_inputs_raise_before_anything_is_written(tmp_path, kwargs, name):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=rf"^{name}"):
        sparsity_sweep(BASE, out, progress=False, **kwargs)
    assert not out.exists()


def test_invalid_combination_raises_config_error_before_training(tmp_path):
    base = RunConfig(dataset="synthetic", model="vgg16", width=0.125, epochs=1, device="cpu", pipeline="bsr",
                     sparsity=0.9, sparse_init="bsr-vgg16")
    out = tmp_path / "never"
    with pytest.raises(ConfigError, match="sparse_init"):
        sparsity_sweep(base, out, pipelines=("bsr", "rigl"), sparsities=(0.9,), progress=False)
    assert not out.exists()
    with pytest.raises(TypeError, match="RunConfig"):
        sweep_configs(BASE.to_dict())


# ------------------------------------------------------------------------------------------------
# The sweep itself (trained once for the module)
# ------------------------------------------------------------------------------------------------

def test_sweep_rows_are_complete_and_finite(swept):
    frame, out, _ = swept
    counts = frame.groupby(["pipeline", "sparsity", "metric"]).size()
    assert len(counts) == len(PIPELINES) * len(SPARSITIES) * len(METRICS) and (counts == 1).all()
    assert list(dict.fromkeys(frame["pipeline"])) == list(PIPELINES)
    assert np.isfinite(frame["value"]).all() and np.isfinite(frame["std"]).all()
    assert (frame["std"] >= 0).all() and (frame["std"] > 0).any()
    assert (frame["replicates"] == 2).all() and (frame["status"] == "completed").all()
    assert (frame.loc[frame.metric != "grad_corr", "batches"] == 3).all()
    assert frame["test_acc"].between(0, 1).all()
    assert frame.loc[frame.metric == "grad_corr", "value"].between(-1, 1).all()
    for column in ("run", "optimizer", "adversarial", "seed", "sigma", "seconds", "n_active", "test_acc"):
        assert column in frame


def test_dense_run_is_trained_once_and_shared(swept):
    frame, out, calls = swept
    assert len(calls) == 5 and len(set(calls)) == 5
    assert len([p for p in Path(out).iterdir() if p.is_dir()]) == 5
    dense = frame[frame.sparsity == 0.0]
    assert dense["run"].nunique() == 1 and "_dense_" in dense["run"].iloc[0]
    assert set(dense["pipeline"]) == set(PIPELINES)
    by_label = {p: g.set_index("metric")["value"] for p, g in dense.groupby("pipeline")}
    pd.testing.assert_series_equal(by_label["rigl"], by_label["set"])
    sparse_runs = frame[frame.sparsity > 0].groupby(["pipeline", "sparsity"])["run"].first()
    assert sparse_runs.nunique() == 4
    assert all(f"_{p}{s:g}_" in run for (p, s), run in sparse_runs.items())


def test_active_coordinates_decrease_with_sparsity(swept):
    frame, _, _ = swept
    for (pipeline, metric), group in frame.groupby(["pipeline", "metric"]):
        n_active = group.sort_values("sparsity")["n_active"].to_numpy()
        assert (np.diff(n_active) < 0).all(), (pipeline, metric, n_active)


def test_second_sweep_trains_nothing_and_reproduces(swept, monkeypatch):
    frame, out, _ = swept

    def no_training(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(sys.modules["agent_lab.train"], "prepare", no_training)
    again = sparsity_sweep(BASE, out, pipelines=("set",), sparsities=(0.0, 0.5), what="correlation", batches=3,
                           replicates=2, progress=False, save=False)
    assert list(again["metric"]) == ["grad_corr", "grad_corr"]
    first = frame[(frame.pipeline == "set") & (frame.metric == "grad_corr") & (frame.sparsity < 0.9)]
    np.testing.assert_allclose(again["value"].to_numpy(), first["value"].to_numpy(), rtol=0, atol=1e-12)


def test_figure_has_two_panels_with_one_line_per_pipeline(swept):
    frame, _, _ = swept
    fig = plot_sparsity_sweep(frame)
    try:
        axes = fig.axes
        assert len([ax for ax in axes if ax.get_title()]) == 2
        for ax in axes:
            assert len(ax.containers) == len(PIPELINES)
            assert [t.get_text() for t in ax.get_legend().get_texts()] == ["RigL", "SET"]
            assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "50", "90"]
        assert "variance" in axes[0].get_title() and "correlation" in axes[1].get_title()
        values = frame[(frame.pipeline == "rigl") & (frame.metric == "grad_corr")].sort_values("sparsity")["value"]
        line = axes[1].containers[0].lines[0]
        np.testing.assert_allclose(np.asarray(line.get_ydata(), float), values.to_numpy())
        np.testing.assert_allclose(np.asarray(line.get_xdata(), float), [0, 1, 2])
    finally:
        plt.close(fig)


def test_correlation_table_of_the_sweep(swept):
    frame, _, _ = swept
    table = correlation_table(frame)
    assert table.shape == (2, 4)
    assert list(table.columns) == ["pipeline", "0%", "50%", "90%"]
    assert list(table["pipeline"]) == list(PIPELINES)
    pattern = re.compile(r"^-?\d+\.\d{4} ± \d+\.\d{4}$")
    assert all(pattern.match(cell) for cell in table.iloc[:, 1:].to_numpy().ravel())
    assert table.loc[0, "0%"] == table.loc[1, "0%"]  # the shared dense run
    numeric = correlation_table(frame, numeric=True)
    corr = frame[frame.metric == "grad_corr"].set_index(["pipeline", "sparsity"])["value"]
    for i, pipeline in enumerate(PIPELINES):
        for s, column in zip(SPARSITIES, ["0%", "50%", "90%"]):
            assert numeric.loc[i, column] == pytest.approx(corr[(pipeline, s)], abs=0)
    variance = correlation_table(frame, metric="grad_var")
    assert re.match(r"^\d\.\d{3}e-\d\d ± \d\.\d{3}e-\d\d$", variance.loc[0, "50%"])


def test_trend_of_the_sweep_is_consistent_with_its_numbers(swept):
    frame, _, _ = swept
    trend = sweep_trend(frame)
    assert set(trend) == set(PIPELINES)
    for pipeline, result in trend.items():
        corr, var = result["values"]["grad_corr"], result["values"]["grad_var"]
        assert set(corr) == set(var) == set(SPARSITIES)
        assert result["corr_lower_at_90"] is (corr[0.9] < corr[0.0])
        assert result["var_higher_at_90"] is (var[0.9] > var[0.0])
        assert "corr_lower_at_99" not in result and "var_higher_at_99" not in result
        assert isinstance(result["corr_decreasing"], bool) and isinstance(result["var_increasing"], bool)


# ------------------------------------------------------------------------------------------------
# Table, trend and figure on hand-made frames (deterministic)
# ------------------------------------------------------------------------------------------------

TABLE_7 = {
    "rigl": {"grad_corr": {0.0: (0.6005, 0.01), 0.5: (0.4564, 0.02), 0.8: (0.3217, 0.0), 0.9: (0.1886, 0.003),
                           0.99: (0.25, 0.1)},
             "grad_var": {0.0: (1.0, 0.1), 0.5: (2.0, 0.1), 0.8: (3.0, 0.1), 0.9: (4.0, 0.2), 0.99: (3.5, 0.3)}},
    "set": {"grad_corr": {0.0: (0.6005, 0.01), 0.5: (0.4535, 0.02), 0.8: (0.2528, 0.0), 0.9: (0.7, 0.003)},
            "grad_var": {0.0: (1.0, 0.1), 0.5: (0.5, 0.1), 0.8: (3.0, 0.1), 0.9: (4.0, 0.2)}},
}


def test_correlation_table_by_hand():
    frame = _hand_frame(TABLE_7)
    table = correlation_table(frame)
    assert list(table.columns) == ["pipeline", "0%", "50%", "80%", "90%", "99%"]
    assert table.loc[0].tolist() == ["rigl", "0.6005 ± 0.0100", "0.4564 ± 0.0200", "0.3217 ± 0.0000",
                                     "0.1886 ± 0.0030", "0.2500 ± 0.1000"]
    assert table.loc[1, "99%"] == "" and table.loc[1, "80%"] == "0.2528 ± 0.0000"
    numeric = correlation_table(frame, numeric=True)
    assert numeric.loc[0, "50%"] == 0.4564 and math.isnan(numeric.loc[1, "99%"])
    assert numeric.dtypes["90%"] == np.float64
    assert correlation_table(frame, fmt=".2f").loc[0, "0%"] == "0.60 ± 0.01"


def test_correlation_table_averages_several_seeds():
    frame = pd.concat([_hand_frame({"rigl": {"grad_corr": {0.0: (0.5, 0.1)}}}),
                       _hand_frame({"rigl": {"grad_corr": {0.0: (0.7, 0.1)}}})], ignore_index=True)
    numeric = correlation_table(frame, numeric=True)
    assert numeric.loc[0, "0%"] == pytest.approx(0.6)
    assert correlation_table(frame).loc[0, "0%"] == f"0.6000 ± {np.std([0.5, 0.7], ddof=1):.4f}"
    with pytest.raises(ValueError, match="frame: missing column"):
        correlation_table(frame.drop(columns="std"))


def test_sweep_trend_by_hand():
    trend = sweep_trend(_hand_frame(TABLE_7))
    rigl, set_ = trend["rigl"], trend["set"]
    assert rigl["corr_lower_at_90"] is True and rigl["corr_lower_at_99"] is True
    assert rigl["var_higher_at_90"] is True and rigl["var_higher_at_99"] is True
    assert rigl["corr_decreasing"] is False  # 0.25 at 99% > 0.1886 at 90%
    assert rigl["var_increasing"] is False   # 3.5 at 99% < 4.0 at 90%
    assert set_["corr_lower_at_90"] is False  # 0.7 > 0.6005
    assert set_["var_higher_at_90"] is True and set_["var_increasing"] is False  # 0.5 at 50% < dense
    assert set_["corr_decreasing"] is False
    assert "corr_lower_at_99" not in set_ and "var_higher_at_99" not in set_
    assert rigl["values"]["grad_corr"][0.9] == 0.1886 and set(set_["values"]["grad_var"]) == {0.0, 0.5, 0.8, 0.9}
    monotone = sweep_trend(_hand_frame({"rigl": {"grad_corr": {0.0: (0.6, 0), 0.5: (0.4, 0), 0.9: (0.2, 0)},
                                                 "grad_var": {0.0: (1.0, 0), 0.5: (2.0, 0), 0.9: (3.0, 0)}}}))
    assert monotone["rigl"]["corr_decreasing"] is True and monotone["rigl"]["var_increasing"] is True
    no_dense = sweep_trend(_hand_frame({"set": {"grad_corr": {0.5: (0.4, 0), 0.9: (0.2, 0)}}}))["set"]
    assert "corr_lower_at_90" not in no_dense and no_dense["corr_decreasing"] is True
    assert "var_increasing" not in no_dense and no_dense["values"]["grad_var"] == {}


def test_figure_by_hand_with_one_metric_missing():
    frame = _hand_frame({p: {"grad_corr": TABLE_7[p]["grad_corr"]} for p in TABLE_7})
    fig = plot_sparsity_sweep(frame, title="hand-made")
    try:
        variance_ax, corr_ax = fig.axes
        assert len(variance_ax.containers) == 0 and "not measured" in [t.get_text() for t in variance_ax.texts]
        assert len(corr_ax.containers) == 2
        assert [t.get_text() for t in corr_ax.get_xticklabels()] == ["0", "50", "80", "90", "99"]
        set_line = corr_ax.containers[1].lines[0]
        np.testing.assert_allclose(np.asarray(set_line.get_xdata(), float), [0, 1, 2, 3])  # no 99% point for SET
    finally:
        plt.close(fig)


def test_diverged_run_gives_nan_rows_without_diagnosing(tmp_path, monkeypatch):
    def diverged(config, out, **kwargs):
        run_dir = Path(out) / config.run_name()
        history = pd.DataFrame({"epoch": [1], "train_loss": [math.nan], "test_acc": [math.nan]})
        return RunResult(config=config, run_dir=run_dir, history=history, status="diverged")

    def no_diagnosis(*args, **kwargs):
        raise AssertionError("a diverged run was diagnosed")

    monkeypatch.setattr(sweep_module, "train", diverged)
    monkeypatch.setattr(sweep_module, "diagnose_run", no_diagnosis)
    frame = sparsity_sweep(BASE, tmp_path, pipelines=("rigl",), sparsities=(0.5,), progress=False)
    assert list(frame["metric"]) == list(METRICS)
    assert frame["value"].isna().all() and (frame["status"] == "diverged").all()
    assert (frame["pipeline"] == "rigl").all() and (frame["sparsity"] == 0.5).all()
    trend = sweep_trend(frame)["rigl"]
    assert trend["values"] == {"grad_corr": {}, "grad_var": {}}
