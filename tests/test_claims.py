"""agent_lab.paper.claims: the verdict rules, on hand-made data with hand-computed statistics."""
import math

import numpy as np
import pandas as pd
import pytest

from agent_lab.paper.claims import (HELD, NOT_HELD, NOT_TESTABLE, Claim, Measured, Verdict, accuracy_levels, all_of,
                                    better, co_move, collapses, epochs_to_reach, faster, fewer_epochs, similar, trend,
                                    variance_below_sgd)


def _points(values: dict[str, list[list[float]]], budgets=(20, 200), objective="standard") -> pd.DataFrame:
    """values[label][seed] = accuracies at each budget."""
    rows = []
    for label, seeds in values.items():
        for seed, accs in enumerate(seeds):
            for budget, acc in zip(budgets, accs):
                rows.append({"label": label, "objective": objective, "seed": seed, "run": f"{label}{seed}",
                             "budget": budget, "epoch": budget // 10, "metric": "clean_acc", "value": acc})
    return pd.DataFrame(rows)


def _measured(points=None, curves=None, extra=None) -> Measured:
    empty = pd.DataFrame(columns=["label", "objective", "seed", "run", "epoch", "test_acc", "status"])
    return Measured(curves if curves is not None else empty, points if points is not None else _points({}),
                    ("objective",), extra or {})


def test_better_holds_with_the_stated_mean_difference_and_standard_error():
    data = _measured(_points({"A": [[60, 80], [62, 82], [64, 84]], "B": [[50, 78], [51, 79], [52, 80]]}))
    verdict = better("A", "B")(data)
    # cells: budget 20: d = 62 - 51 = 11, se = sqrt(4/3 + 1/3); budget 200: d = 82 - 79 = 3, same se
    se_cell = math.sqrt(4 / 3 + 1 / 3)
    se = math.sqrt(2 * se_cell ** 2) / 2
    assert verdict.verdict == HELD
    assert f"mean +7.00 points (SE {se:.2f}) over 2 cells; ahead in 2/2" in verdict.evidence


def test_better_is_not_held_when_the_difference_is_within_noise_or_reversed():
    noisy = _measured(_points({"A": [[60, 80], [50, 70]], "B": [[54, 74], [55, 75]]}))
    assert better("A", "B")(noisy).verdict == NOT_HELD  # mean +0.5, SE ~3.6
    reversed_ = _measured(_points({"A": [[50, 70], [51, 71]], "B": [[60, 80], [61, 81]]}))
    assert better("A", "B")(reversed_).verdict == NOT_HELD


def test_all_quantifier_fails_when_one_cell_is_clearly_behind():
    # A far ahead at budget 20, clearly behind at 200: "most" holds on the mean, "all" does not.
    data = _measured(_points({"A": [[80, 70], [81, 71], [82, 72]], "B": [[50, 75], [51, 76], [52, 77]]}))
    assert better("A", "B", quantifier="most")(data).verdict == HELD
    verdict = better("A", "B", quantifier="all")(data)
    assert verdict.verdict == NOT_HELD and "behind by > 2 se in 1" in verdict.evidence


def test_one_seed_or_a_missing_arm_is_not_testable():
    one_seed = _measured(_points({"A": [[60, 80]], "B": [[50, 70]]}))
    claim = Claim("A beats B.", better("A", "B"))
    assert claim.decide(one_seed).verdict == NOT_TESTABLE
    assert "fewer than two seeds" in claim.decide(one_seed).evidence
    missing = _measured(_points({"A": [[60, 80], [61, 81]]}))
    assert claim.decide(missing) == Verdict(NOT_TESTABLE, "'B' was not run at this scale")
    assert Claim("no check.").decide(one_seed).verdict == NOT_TESTABLE


def test_where_and_final_and_budgets_select_cells():
    points = pd.concat([_points({"A": [[60, 80], [61, 81]], "B": [[50, 90], [51, 91]]}),
                        _points({"A": [[10, 10], [11, 11]], "B": [[50, 50], [51, 51]]}, objective="AT")])
    data = _measured(points)
    assert better("A", "B", where={"objective": "standard"}, budgets=(20,))(data).verdict == HELD
    assert better("A", "B", where={"objective": "standard"}, final=True)(data).verdict == NOT_HELD
    assert better("A", "B", where={"objective": ["AT"]})(data).verdict == NOT_HELD
    assert Claim("x.", better("A", "B", metric="robust_acc")).decide(data).verdict == NOT_TESTABLE


def test_similar_is_held_only_when_the_whole_interval_is_within_the_tolerance():
    tight = _measured(_points({"A": [[60.0, 80], [60.2, 81], [60.4, 82]], "B": [[60.1, 70], [60.3, 71], [60.5, 72]]}))
    verdict = similar("A", "B", tolerance=1.0, budgets=(20,))(tight)
    se = math.sqrt(0.04 / 3 + 0.04 / 3)  # d = -0.1, |d| + 2 se = 0.43 <= 1
    assert verdict.verdict == HELD and f"mean -0.10 points (SE {se:.2f})" in verdict.evidence
    assert similar("A", "B", tolerance=1.0, budgets=(200,))(tight).verdict == NOT_HELD  # d = +10, far outside
    # d = -0.5 with se = 0.71: the interval [-1.91, +0.91] straddles +-1: the data cannot tell
    noisy = _measured(_points({"A": [[60, 80], [61, 81]], "B": [[60.5, 70], [61.5, 71]]}))
    verdict = similar("A", "B", tolerance=1.0, budgets=(20,))(noisy)
    assert verdict.verdict == NOT_TESTABLE and "[-1.91, +0.91]" in verdict.evidence
    assert "too noisy at this scale" in verdict.evidence


def _curves(shapes: dict[str, list[list[float]]], status=None) -> pd.DataFrame:
    rows = []
    for label, seeds in shapes.items():
        for seed, accs in enumerate(seeds):
            for epoch, acc in enumerate(accs, start=1):
                rows.append({"label": label, "objective": "standard", "seed": seed, "run": f"{label}{seed}",
                             "epoch": epoch, "test_acc": acc, "wall_time": 10.0 * epoch,
                             "fwd_bwd": (4 if label == "A" else 1) * 100 * epoch,
                             "status": (status or {}).get(label, "completed")})
    return pd.DataFrame(rows)


def test_faster_compares_curves_over_a_window_of_training():
    curves = _curves({"A": [[30, 50, 60, 62], [31, 51, 61, 63]], "B": [[20, 40, 64, 66], [21, 41, 65, 67]]})
    data = _measured(curves=curves)
    assert faster("A", "B", epochs=(0.0, 0.5))(data).verdict == HELD       # epochs 1-2
    assert faster("B", "A", epochs=(0.5, 1.0))(data).verdict == HELD       # epochs 3-4
    assert faster("A", "B")(data).verdict == HELD  # mean over all four epochs is +3 > 2 SE


def test_epochs_to_reach_and_levels():
    curves = _curves({"A": [[30, 50, 60, 62]], "B": [[20, 40, 64, 66]]})
    levels = accuracy_levels(curves, count=3)
    assert levels == [31.0, 46.5, 62.0]  # 50-100 % of the lower best (A: 62)
    reached = epochs_to_reach(curves, [45, 65], facets=("objective",))
    by = reached.set_index(["label", "level"])["value"]
    assert by[("A", 45.0)] == 2 and math.isnan(by[("A", 65.0)]) and by[("B", 65.0)] == 4


def test_fewer_epochs_in_epochs_and_in_passes():
    curves = _curves({"A": [[40, 55, 60, 62], [41, 56, 61, 63]], "B": [[20, 30, 50, 62], [21, 31, 51, 63]]})
    data = _measured(curves=curves)
    assert fewer_epochs("A", "B")(data).verdict == HELD
    # A costs 4x the passes per epoch: per pass it is slower
    assert fewer_epochs("A", "B", x="fwd_bwd")(data).verdict == NOT_HELD


def test_collapses_counts_diverged_and_fallen_runs():
    curves = _curves({"g": [[30, 50, 20, 10], [30, 50, 52, 55], [30, 40, 10, 10]]})
    assert collapses("g")(_measured(curves=curves)).verdict == HELD  # 2 of 3 fall by >= 20 points
    healthy = _curves({"g": [[30, 50, 52, 55], [30, 50, 51, 54]]})
    assert collapses("g")(_measured(curves=healthy)).verdict == NOT_HELD
    diverged = _curves({"g": [[30, 10]]}, status={"g": "diverged"})
    assert collapses("g")(_measured(curves=diverged)).verdict == HELD


def test_trend_over_sparsity():
    rows = []
    for pipeline in ("rigl", "set"):
        for sparsity, value in zip((0.0, 0.5, 0.9), (0.6, 0.4, 0.2)):
            rows.append({"pipeline": pipeline, "sparsity": sparsity, "metric": "grad_corr", "value": value,
                         "std": 0.01})
    sweep = pd.DataFrame(rows)
    data = _measured(extra={"sweep": sweep})
    assert trend("grad_corr", "down")(data).verdict == HELD
    assert trend("grad_corr", "up")(data).verdict == NOT_HELD
    noisy = sweep.assign(std=0.5)
    assert trend("grad_corr", "down")(_measured(extra={"sweep": noisy})).verdict == NOT_HELD
    assert Claim("x.", trend("grad_var", "up")).decide(data).verdict == NOT_TESTABLE


def test_co_move_and_larger():
    epochs = np.arange(1, 11)
    x = np.sin(epochs / 2.0)
    frame = pd.DataFrame({"label": "A", "objective": "standard", "seed": 0, "run": "r", "epoch": epochs,
                          "c_hat_star": x + 0.5, "grad_corr": x * 0.8, "status": "completed"})
    data = _measured(curves=frame)
    assert co_move("c_hat_star", "grad_corr", label="A")(data).verdict == HELD
    assert co_move("c_hat_star", "grad_corr", label="A", larger=True)(data).verdict == HELD
    anti = frame.assign(grad_corr=-x)
    assert co_move("c_hat_star", "grad_corr", label="A")(_measured(curves=anti)).verdict == NOT_HELD


def test_variance_below_sgd_and_all_of():
    curve = {"c_applied": 0.1, "var_at_c": 0.9, "var_sgd": 1.0, "var_at_c_hat": 1.2}
    data = _measured(extra={"variance_curve": curve})
    assert variance_below_sgd()(data).verdict == HELD
    assert variance_below_sgd()(_measured(extra={"variance_curve": {**curve, "var_at_c": 1.1}})).verdict == NOT_HELD
    one_seed = _measured(_points({"A": [[60, 80]], "B": [[50, 70]]}), extra={"variance_curve": curve})
    combined = all_of(variance_below_sgd(), better("A", "B"))(one_seed)
    assert combined.verdict == NOT_TESTABLE and "fewer than two seeds" in combined.evidence


def test_verdict_refuses_unknown_values():
    with pytest.raises(ValueError, match="valid choices: held, not held, not testable"):
        Verdict("maybe", "")


def test_a_diverged_run_counts_at_chance_from_its_divergence_and_is_drawn_as_diverged(tmp_path):
    from types import SimpleNamespace

    from agent_lab.config import RunConfig
    from agent_lab.paper.measure import curves_of, points_of
    from agent_lab.paper.plan import Arm, Run, facets
    from agent_lab.paper.render import curves as draw_curves
    from agent_lab.paper.scales import Scale

    arm = Arm("g", RunConfig(epochs=4), facets(dataset="cifar10"))
    healthy = SimpleNamespace(history=pd.DataFrame({"epoch": [1, 2, 3, 4], "test_acc": [0.3, 0.5, 0.6, 0.7]}),
                              run_dir=tmp_path / "ok", status="completed")
    diverged = SimpleNamespace(history=pd.DataFrame({"epoch": [1, 2, 3], "test_acc": [0.3, 0.4, math.nan]}),
                               run_dir=tmp_path / "bad", status="diverged")
    curves = curves_of([(Run(arm, 0, arm.config), healthy), (Run(arm, 1, arm.config), diverged)], ("dataset",))
    bad = curves[curves["run"] == "bad"].set_index("epoch")["test_acc"]
    assert bad.to_dict() == {1: 30.0, 2: 40.0, 3: 10.0, 4: 10.0}  # percent; chance (10 classes) from epoch 3
    points = points_of(curves, (20, 40), 40, Scale("four", 1, "4 epochs", epochs=4), ("dataset",))
    assert points[points["run"] == "bad"]["value"].tolist() == [40.0, 10.0]
    measured = Measured(curves, points, ("dataset",))
    assert collapses("g")(measured).evidence.startswith("1/2 runs of g diverged")
    fig = draw_curves(SimpleNamespace(id="figX", title="t"), measured, "smoke").figures["figX"]
    markers = [line for line in fig.axes[0].lines if line.get_marker() == "x"]
    assert len(markers) == 1 and list(markers[0].get_xdata()) == [3]


def test_the_variance_curve_is_the_exact_quadratic_over_every_mark():
    from types import SimpleNamespace

    from agent_lab.paper.render import variance_curve

    var_sgd, cov, var_old = 10.0, 4.0, 8.0  # c* = 0.5
    at = lambda c: var_sgd - 2 * c * cov + c * c * var_old  # noqa: E731
    curve = {"c_hat": -0.5, "gamma": 0.1, "c_applied": -0.05, "c_star": 0.5, "var_sgd": var_sgd, "cov": cov,
             "var_old": var_old, "var_at_c": at(-0.05), "var_at_c_hat": at(-0.5), "var_at_c_star": at(0.5)}
    rendered = variance_curve(SimpleNamespace(id="fig2", title="t"), _measured(extra={"variance_curve": curve}), "cpu")
    line = rendered.figures["fig2"].axes[0].lines[0]
    xs, ys = line.get_xdata(), line.get_ydata()
    assert min(xs) < -0.5 and max(xs) > 1.0
    assert np.allclose(ys, [at(c) for c in xs])
    assert rendered.tables["fig2"]["c_star"].iloc[0] == 0.5
