"""benchmarks/suite.py at its smoke set: every row measured, exact pass counts, a JSON that prices runs."""
import importlib.util
import json
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "suite.py"

@pytest.mark.slow
def test_the_smoke_set_measures_every_method_and_precision(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("suite", SUITE)
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    out = tmp_path / "suite.json"
    assert suite.main(["--set", "smoke", "--device", "cpu", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    rows = {(r["precision"], r["method"]): r for r in data["throughput"]}
    smoke = suite.SETS["smoke"]
    assert set(rows) == {(p, m) for p in smoke["precisions"] for m in smoke["methods"]}
    # exact pass counts per training image and epoch: the step, AGENT's snapshot gradient, its refresh
    # (g~ and the c-hat* forwards; 'options' drops the forwards), AT's 10 attack steps
    expected = {"sgd": 1, "agent": 4, "agent-options": 3, "at": 11, "at+agent": 14}
    for (precision, method), row in rows.items():
        assert row["passes_per_image"] == expected[method]
        assert row["images_per_s"] > 0 and len(row["rounds"]) == smoke["rounds"]
    ratios = {(r["precision"], r["ratio"]): r["value"] for r in data["ratios"]}
    assert ratios[("fp32", "agent/sgd")] > 1 and ("bf16", "sgd: bf16/fp32") in ratios
    timings = data["timings"]["vgg16"]
    assert timings["width"] == 0.0625 and timings["agent"] > timings["sgd"] > 0
    arithmetic = data["pass_arithmetic"][0]
    assert 0 < arithmetic["forward_share"] < 1 and arithmetic["agent_passes"] == 3 + arithmetic["forward_share"]
    assert "agent/sgd" in capsys.readouterr().out


def _suite():
    spec = importlib.util.spec_from_file_location("suite", SUITE)
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    return suite


@pytest.mark.slow
def test_the_gpu_sets_trained_time_to_accuracy_and_paper_projection_run_on_a_cpu(monkeypatch):
    from agent_lab.paper import cost as cost_module

    suite = _suite()
    tta = suite.time_to_accuracy({"model": "vgg16", "width": 0.0625, "epochs": 2}, "cpu")
    assert set(tta.x) == {"epoch", "wall_time", "fwd_bwd"} and {"SGD", "AGENT"} <= set(tta.columns)
    monkeypatch.setattr(cost_module, "seconds_per_pass", lambda *args, **kwargs: 1e-3)
    monkeypatch.setattr(cost_module, "pass_ratio", lambda *args, **kwargs: 1.0)
    timings = {"vgg16": {"width": 1.0, "precision": "bf16", "sgd": 1e-4, "agent": 4e-4, "at": 1e-3,
                         "at+agent": 1.2e-3}}
    projected = suite.projection(timings, "paper").set_index("family")
    assert set(projected.index) == {"bsr", "itop", "rigl", "diagnostics"}
    assert "vgg16" not in projected.loc["bsr", "models_not_timed"] and "wrn-28-4" in projected.loc["bsr", "models_not_timed"]
    assert (projected.hours > 0).all() and projected.hours_not_shared_before.sum() <= projected.hours.sum()
