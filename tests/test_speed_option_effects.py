"""agent_lab.paper.options: the option runs beside the baseline, and their effect by seed."""
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from agent_lab.paper.options import option_effects, option_plan
from agent_lab.paper.reproduce import train_all


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


def test_option_runs_train_at_the_smoke_scale(tmp_path):
    the_plan = option_plan(["fig7"], "smoke", ["steps + quarter"], labels=["A-BSR-Net"], sparsities=[0.9], seeds=2)
    results = train_all(the_plan, tmp_path, progress=False)
    effects = option_effects(the_plan, results)
    assert len(effects) == 1 and effects.iloc[0].seeds == 2
    assert effects.iloc[0].passes_ratio < 1  # no c-hat* forwards, a quarter of the refresh
