"""agent_lab.paper.options: the option runs beside the baseline, and their effect by seed."""
import importlib.util
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from agent_lab.paper.options import effects_of, option_effects, option_figure, option_plan
from agent_lab.paper.reproduce import train_all

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "option_accuracy.py"


def _result(acc, seconds, passes, epochs=2, status="completed"):
    history = pd.DataFrame({"epoch": range(1, epochs + 1), "test_acc": [0.1] * (epochs - 1) + [acc],
                            "wall_time": [seconds * (e + 1) for e in range(epochs)],
                            "fwd_bwd": [passes * (e + 1) for e in range(epochs)]})
    return SimpleNamespace(history=history, status=status)


def test_option_plan_adds_each_option_to_the_arms_it_applies_to():
    the_plan = option_plan(["fig7"], "smoke", ["steps + quarter", "bf16"])
    base = the_plan.runs["fig7"]
    steps = the_plan.runs["fig7:steps + quarter"]
    bf16 = the_plan.runs["fig7:bf16"]
    assert len(bf16) == len(base)  # every arm
    assert {r.config.optimizer for r in steps} == {"agent"} and 0 < len(steps) < len(base)
    assert all(r.config.c_hat_source == "steps" and r.config.full_pass_fraction == 0.25 for r in steps)
    assert all(r.config.precision == "bf16" and r.arm.label.endswith(" [bf16]") for r in bf16)
    assert not {r.key for r in steps} & {r.key for r in base}
    with pytest.raises(ValueError, match="options: fp8 invalid; valid choices: fused"):
        option_plan(["fig7"], "smoke", ["fp8"])


def test_option_effects_pair_the_seeds_and_read_by_the_similarity_rule():
    the_plan = option_plan(["fig7"], "smoke", ["bf16"], labels=["BSR-Net"], sparsities=[0.9], seeds=2)
    base, variant = the_plan.runs["fig7"], the_plan.runs["fig7:bf16"]
    assert len(base) == len(variant) == 2
    accuracies = {0: (0.60, 0.605), 1: (0.62, 0.623)}  # differences 0.5 and 0.3 points
    results = {}
    for run in base:
        results[run.key] = _result(accuracies[run.seed][0], seconds=10.0, passes=100)
    for run in variant:
        results[run.key] = _result(accuracies[run.seed][1], seconds=6.0, passes=100)
    row = option_effects(the_plan, results).iloc[0]
    assert (row.arm, row.option, row.seeds) == ("BSR-Net", "bf16", 2)
    assert row.difference == pytest.approx(0.4)
    assert row.difference_se == pytest.approx(pd.Series([0.5, 0.3]).std(ddof=1) / math.sqrt(2))
    assert row.reading == "same accuracy"  # 0.4 + 2 * 0.1 <= 1 point
    assert row.time_ratio == pytest.approx(0.6) and row.passes_ratio == 1.0
    results[variant[0].key] = _result(0.70, seconds=6.0, passes=100)
    results[variant[1].key] = _result(0.725, seconds=6.0, passes=100)
    assert option_effects(the_plan, results).iloc[0].reading == "different accuracy"  # +10.25 ± 0.25


def test_the_time_ratio_reads_the_median_epoch_so_a_slow_stretch_of_a_run_does_not_count():
    the_plan = option_plan(["fig7"], "smoke", ["bf16"], labels=["BSR-Net"], sparsities=[0.9], seeds=2)
    results = {run.key: _result(0.6, seconds=10.0, passes=100, epochs=5) for run in the_plan.runs["fig7"]}
    results.update({run.key: _result(0.6, seconds=6.0, passes=100, epochs=5) for run in the_plan.runs["fig7:bf16"]})
    slow_start = the_plan.runs["fig7"][0].key  # its first two epochs took 70 s each (another code version)
    results[slow_start].history["wall_time"] = [70.0, 140.0, 150.0, 160.0, 170.0]
    assert option_effects(the_plan, results).iloc[0].time_ratio == pytest.approx(0.6)


def test_option_runs_train_at_the_smoke_scale_and_the_benchmark_writes_its_files(tmp_path):
    the_plan = option_plan(["fig7"], "smoke", ["steps + quarter"], labels=["A-BSR-Net"], sparsities=[0.9], seeds=2)
    results = train_all(the_plan, tmp_path / "runs", progress=False)
    effects = option_effects(the_plan, results)
    assert len(effects) == 1 and effects.iloc[0].seeds == 2
    assert effects.iloc[0].passes_ratio < 1  # no c-hat* forwards, a quarter of the refresh

    spec = importlib.util.spec_from_file_location("option_accuracy", BENCHMARK)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    figures = tmp_path / "figures"
    assert benchmark.main(["fig7", "--scale", "smoke", "--options", "steps + quarter", "--methods", "A-BSR-Net",
                           "--sparsities", "0.9", "--seeds", "2", "--out", str(tmp_path / "runs"),
                           "--figures", str(figures), "--archive", str(tmp_path / "archive"), "--quiet"]) == 0
    folder = figures / "speed_options"
    assert {p.name for p in folder.iterdir()} == {
        "SOURCES.json", "fig7_smoke.csv", "fig7_smoke.md", "fig7_smoke.png", "fig7_smoke.pdf",
        "fig7_smoke_seeds.csv", "fig7_smoke_seeds.md"}
    seeds = pd.read_csv(folder / "fig7_smoke_seeds.csv")
    assert sorted(seeds.seed) == [0, 1] and seeds.scale.str.startswith("smoke").all()
    written = pd.read_csv(folder / "fig7_smoke.csv")
    assert written.difference.iloc[0] == pytest.approx(effects.difference.iloc[0])
    sources = json.loads((folder / "SOURCES.json").read_text())["fig7_smoke"]
    assert set(sources["runs"]) == {*seeds.baseline_run, *seeds.option_run} and len(sources["runs"]) == 4
    assert len(list((tmp_path / "archive" / "smoke").iterdir())) == 4  # every finished run archived


def test_the_figure_shows_every_seed_and_the_per_arm_means():
    pairs = pd.DataFrame({"artifact": "fig4", "arm": ["A", "A", "A", "B", "B", "B"], "option": "bf16",
                          "seed": [0, 1, 2] * 2, "difference": [0.5, -0.2, 0.1, 2.0, 3.0, math.nan],
                          "baseline_acc": 30.0, "option_acc": 30.0, "baseline_epoch_s": 10.0, "option_epoch_s": 6.0,
                          "baseline_passes": 4.0, "option_passes": 4.0, "option_status": "completed"})
    figure = option_figure(pairs)
    left, right = figure.axes
    points = [c for c in left.collections if isinstance(c, PathCollection) and len(c.get_offsets())]
    assert sorted(len(c.get_offsets()) for c in points) == [3, 3]  # the NaN seed is drawn as nothing
    means = [line.get_xydata()[0, 0] for line in left.get_lines() if line.get_marker() == "D" and len(line.get_xydata())]
    assert means == pytest.approx([0.4 / 3, 2.5])
    assert [t.get_text() for t in left.get_yticklabels()] == ["A\nbf16", "B\nbf16"]
    assert [round(p.get_width(), 6) for p in right.patches][:2] == [0.6, 0.6]
    assert effects_of(pairs.iloc[:0]).empty and list(effects_of(pairs.iloc[:0]).columns) == list(effects_of(pairs).columns)
