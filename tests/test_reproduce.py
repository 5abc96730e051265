"""agent-lab reproduce: plans per scale, shared runs, scale rules, dry runs, cost (tests_reproduce_smoke.py trains)."""
import pytest

from agent_lab import RunConfig, train
from agent_lab.cli import main
from agent_lab.config import ConfigError
from agent_lab.paper import ARTIFACTS
from agent_lab.paper import cost as cost_module
from agent_lab.paper.plan import bsr, rigl
from agent_lab.paper.reproduce import plan
from agent_lab.paper.scales import SCALES, get_scale

IDS = list(ARTIFACTS)


def test_every_artifact_has_runs_at_the_smoke_scale_and_the_paper_scale():
    smoke = plan(["all"], "smoke")
    paper = plan(["all"], "paper")
    assert list(smoke.runs) == IDS
    for artifact in IDS:
        assert smoke.runs[artifact], artifact
        if artifact != "fig15":  # ImageNet: runs at the paper scale only when the data are there
            assert paper.runs[artifact], artifact
    for runs in paper.runs.values():
        for run in runs:
            assert run.config.width == 1 and run.config.epochs in (100, 200, 250)
            assert run.config.train_subset is None and run.config.dataset != "cifar10-mini"


def test_the_cpu_scale_trains_standard_vgg_runs_on_the_cifar10_subset():
    cpu = plan(["all"], "cpu")
    for runs in cpu.runs.values():
        for run in runs:
            config = run.config
            assert config.dataset == "cifar10" and config.train_subset == 10000 and config.test_subset == 2000
            assert config.model.startswith("vgg") and config.adversarial == "none"
            assert config.epochs == 20 and config.width == 0.125
    # what is not run there says so
    assert not cpu.runs["table3"] and "not run" in ARTIFACTS["table3"].note("cpu")
    assert cpu.runs["fig23"] and "standard training in place of AT" in ARTIFACTS["fig23"].note("cpu")


def test_artifacts_share_runs_by_config_hash():
    shared = plan(["table1", "fig7", "fig17", "fig4"], "cpu")
    keys = {artifact: {run.key for run in runs} for artifact, runs in shared.runs.items()}
    assert keys["fig7"] == keys["fig17"] and keys["fig7"] <= keys["table1"] and keys["fig4"] <= keys["table1"]
    assert len(shared.distinct) == len(keys["table1"]) == 12  # 2 sparsities x 2 arms x 3 seeds


def test_scale_rules_epochs_budgets_update_interval_and_attacks():
    cpu, smoke, paper = SCALES["cpu"], SCALES["smoke"], SCALES["paper"]
    assert [cpu.budget(e, 200) for e in (20, 40, 70, 90, 140, 200)] == [2, 4, 7, 9, 14, 20]
    assert [cpu.budget(e, 250) for e in (20, 80, 130, 180, 240)] == [2, 6, 10, 14, 19]
    assert [smoke.budget(e, 200) for e in (20, 200)] == [1, 2]
    adversarial = bsr("agent", sparsity=0.9, adversarial="at")
    assert adversarial.robust_eval_epochs == (20, 40, 70, 90, 140, 200)
    at_smoke = smoke.apply(adversarial, "cpu")
    assert at_smoke.robust_eval_epochs == (1, 2) and at_smoke.attack_steps == 2
    assert (at_smoke.robust_eval, at_smoke.robust_eval_restarts) == ("pgd20", 2)
    assert paper.apply(adversarial, "cpu") == adversarial.replace(device="cpu")
    rigl90 = rigl("sgd", sparsity=0.9)
    assert rigl90.update_every is None  # the pipeline default (100 steps) at the paper's scale
    # as many updates over training as the paper's, at least a quarter epoch (20 of 79 steps) apart
    assert rigl90.epochs == 250
    assert cpu.apply(rigl90, "cpu").update_every == 20  # 100 * 1580 / 97750 = 1.6 is below the floor
    assert cpu.apply(rigl90.replace(update_every=19550), "cpu").update_every == 316  # 5 updates either way
    set_itop = cpu.apply(rigl90.replace(pipeline="set-itop"), "cpu")
    rigl_itop = cpu.apply(rigl90.replace(pipeline="rigl-itop"), "cpu")
    assert (set_itop.update_every, rigl_itop.update_every) == (24, 65)
    for paper_interval, scaled in ((1500, set_itop), (4000, rigl_itop)):  # the paper's update count
        assert 250 * 391 // paper_interval == 20 * 79 // scaled.update_every
    assert smoke.apply(rigl90, "cpu").update_every == 1  # 4 steps per epoch at the smoke scale
    assert cpu.apply(bsr(sparsity=0.9), "cpu").update_every is None  # BSR rewires every step
    with pytest.raises(ValueError, match="valid choices: smoke, cpu, paper"):
        get_scale("laptop")


def test_robust_eval_epochs_is_checked_and_hashes_only_when_set():
    assert RunConfig().config_hash() == "f4062c12b3c4"  # unchanged by the field's arrival
    config = RunConfig(adversarial="at", epochs=4, robust_eval_epochs=[2, 4])
    assert config.robust_eval_epochs == (2, 4) and config.config_hash() != config.replace(
        robust_eval_epochs=()).config_hash()
    with pytest.raises(ConfigError, match=r"robust_eval_epochs: \(4, 2\) is invalid; expected increasing whole epochs"):
        RunConfig(adversarial="at", epochs=4, robust_eval_epochs=(4, 2))
    with pytest.raises(ConfigError, match="in 1..4"):
        RunConfig(adversarial="at", epochs=4, robust_eval_epochs=(5,))
    with pytest.raises(ConfigError, match="needs a robust evaluation"):
        RunConfig(epochs=4, robust_eval_epochs=(2,))


def test_robust_accuracy_is_measured_on_the_whole_test_set_at_the_named_epochs_only(tmp_path):
    config = RunConfig(dataset="cifar10-mini", train_subset=128, test_subset=64, width=0.0625, epochs=3,
                       batch_size=64, robust_eval="pgd20", robust_eval_restarts=1, robust_eval_subset=16,
                       robust_eval_epochs=(2,), device="cpu")
    history = train(config, out=tmp_path, progress=False).history
    assert history["robust_acc"].isna().tolist() == [True, False, False]
    assert history["robust_n"].tolist()[1:] == [64, 64]  # the whole test set, not the subset of 16


def test_dry_run_lists_the_papers_exact_runs_without_training(tmp_path, capsys):
    assert main(["reproduce", "table5", "--scale", "paper", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "54 distinct runs (0 cached)" in out  # 3 arms x 2 sparsities x 3 objectives x 3 seeds
    assert out.count("[missing]") == 54 and '"robust_eval_epochs": [20, 40, 70, 90, 140, 200]' in out
    assert '"optimizer": "no-gamma"' in out and "vgg16-w1_cifar10_bsr0.99" in out
    assert list(tmp_path.iterdir()) == []


def test_list_shows_runs_needed_cached_and_the_cost(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cost_module, "seconds_per_pass", lambda *args, **kwargs: 1e-4)
    assert main(["list", "--scale", "smoke", "--cost", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fig7 " in out and "runs: 4 needed, 0 cached, 4 to train, ~" in out
    assert "total (shared runs once)" in out and "benchmarks/suite.py" in out


def test_list_takes_ids_and_refuses_unknown_ones(tmp_path, capsys):
    assert main(["list", "fig7", "table1", "--scale", "smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line[:1].isalnum() and not line.startswith("scale")]
    assert listed == ["fig7", "table1"] and "runs: 4 needed, 0 cached, 4 to train" in out
    assert main(["list", "fig99"]) == 2
    assert "fig99 invalid; valid choices: table1" in capsys.readouterr().err


def test_timings_price_each_run_at_its_measured_epoch_time(tmp_path, capsys):
    the_plan = plan(["fig7", "fig17"], "smoke")
    runs = list(the_plan.distinct.values())
    width = runs[0].config.width
    timings = {"vgg16": {"width": width, "sgd": 1e-3, "agent": 4e-3, "at": 1e-2, "at+agent": 1.3e-2}}
    frame = cost_module.plan_cost(the_plan, tmp_path, timings).set_index("run")
    for run in runs:
        config = run.config
        per_example = {("sgd", "none"): 1e-3, ("agent", "none"): 4e-3, ("sgd", "at"): 1e-2,
                       ("agent", "at"): 1.3e-2}[(config.optimizer, config.adversarial)]
        epochs, (train_n, test_n) = config.epochs, (config.train_subset, config.test_subset)
        expected = epochs * (train_n * per_example + test_n / 3 * 1e-3)
        if config.robust_eval not in (None, "none"):
            assert frame.loc[config.run_name(), "seconds"] > expected  # plus the robust evaluations
        else:
            assert frame.loc[config.run_name(), "seconds"] == pytest.approx(expected)
    config = runs[0].config
    assert cost_module.timed_example_seconds(config.replace(optimizer="mvr", momentum=0.0), timings) == (2e-3, 1e-3)
    assert cost_module.timed_example_seconds(config.replace(adversarial="trades"), timings)[0] == pytest.approx(
        1e-2 * 12 / 11)
    assert cost_module.timed_example_seconds(config.replace(width=1.0), timings) is None  # another width
    path = tmp_path / "suite.json"
    path.write_text('{"timings": ' + str(timings).replace("'", '"') + "}")
    assert main(["list", "--scale", "smoke", "--cost", "--timings", str(path), "--out", str(tmp_path)]) == 0
    assert "at the given timings" in capsys.readouterr().out
    assert main(["list", "--timings", str(path)]) == 2
    (tmp_path / "bad.json").write_text("{}")
    assert main(["list", "--scale", "smoke", "--cost", "--timings", str(tmp_path / "bad.json")]) == 2
    assert "no 'timings'" in capsys.readouterr().err


def test_bad_artifacts_and_seeds_are_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="table9 invalid; valid choices: table1"):
        plan(["table9"], "smoke")
    with pytest.raises(ValueError, match="seeds: 0 is invalid"):
        plan(["fig7"], "smoke", seeds=0)
    assert main(["reproduce", "fig99", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agent-lab: error: artifacts: fig99 invalid") and "\n" not in err


def test_cost_uses_the_pass_times_measured_by_runs_in_the_store(tmp_path, monkeypatch):
    the_plan = plan(["fig7"], "smoke")
    first = next(iter(the_plan.distinct.values()))
    partial = train(first.config, out=tmp_path, progress=False, stop_after_epoch=1)
    row = partial.history.iloc[-1]
    measured = cost_module.measured_pass_seconds(tmp_path)
    key = (first.config.model, first.config.width, first.config.dataset, first.config.batch_size)
    assert measured == {key: pytest.approx(row["wall_time"] / row["fwd_bwd"])}

    def no_timing(*args, **kwargs):
        raise AssertionError("the store's measurement should have been used")

    monkeypatch.setattr(cost_module, "seconds_per_pass", no_timing)
    frame = cost_module.plan_cost(the_plan, tmp_path).set_index("run")
    assert frame.loc[first.config.run_name(), "state"] == "interrupted"
    assert frame.loc[first.config.run_name(), "epochs_left"] == 1
    per_pass = measured[key]
    sgd = [run for run in the_plan.distinct.values() if run.config.optimizer == "sgd"][-1]
    train_n, test_n = sgd.config.train_subset, sgd.config.test_subset
    assert frame.loc[sgd.config.run_name(), "seconds"] == pytest.approx(2 * (train_n + test_n / 3) * per_pass)


def test_cost_scales_another_models_measurement_by_the_timed_ratio(tmp_path, monkeypatch):
    """A model with no run in the store borrows a stored model's measured pass time, scaled by the
    ratio of the two timed in one sitting; the absolute timing is the last resort."""
    monkeypatch.setattr(cost_module, "CACHE", tmp_path / "pass_times.json")
    vgg = plan(["fig7"], "smoke").distinct
    sgd = next(run for run in vgg.values() if run.config.optimizer == "sgd")
    other = sgd.config.replace(model="vgg-c")
    stored = {(sgd.config.model, sgd.config.width, sgd.config.dataset, sgd.config.batch_size): 2e-3}
    timed = []

    def fake_timing(model, width, classes, image, batch):
        timed.append(model)
        return {"vgg16": 1e-4, "vgg-c": 3e-4}[model]

    monkeypatch.setattr(cost_module, "_timed_pass", fake_timing)
    assert cost_module._pass_seconds(other, stored) == pytest.approx(2e-3 * 3)
    assert timed == ["vgg-c", "vgg16"]
    assert cost_module._pass_seconds(other, stored) == pytest.approx(6e-3) and len(timed) == 2  # cached
    assert cost_module._pass_seconds(other.replace(batch_size=32), stored) == 3e-4  # no comparable run
    assert cost_module._pass_seconds(sgd.config, stored) == 2e-3 and len(timed) == 3


def test_methods_and_sparsities_choose_arms_and_bad_ones_are_refused_in_one_line(tmp_path, capsys):
    chosen = plan(["fig7", "fig4"], "smoke", labels=["A-BSR-Net"], sparsities=[0.99])
    assert chosen.distinct and all(run.arm.label == "A-BSR-Net" and run.arm.facet["sparsity"] == 0.99
                                   for run in chosen.distinct.values())
    every = plan(["fig7", "fig4"], "smoke")
    assert set(chosen.distinct) == {key for key, run in every.distinct.items()
                                    if run.arm.label == "A-BSR-Net" and run.arm.facet["sparsity"] == 0.99}
    assert main(["reproduce", "fig7", "--methods", "A-BSR-Net", "--sparsities", "0.99", "--dry-run",
                 "--out", str(tmp_path)]) == 0
    assert "1 distinct runs" in capsys.readouterr().out
    assert main(["reproduce", "fig7", "--methods", "SGD", "--dry-run", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("agent-lab: error: methods: SGD invalid for fig7 at the smoke scale; "
                   "valid choices: BSR-Net, A-BSR-Net")
    with pytest.raises(ValueError, match="sparsities: 0.5 invalid for fig7 at the smoke scale; valid choices: 0.9, 0.99"):
        plan(["fig7"], "smoke", sparsities=[0.5])


def test_sweep_diagnostics_are_cached_one_by_one_so_artifacts_share_them(tmp_path, monkeypatch):
    """Table 7 measures the correlation, Fig. 1 the variance and the correlation of the same runs:
    the correlation is computed once."""
    import agent_lab.experiments.diagnose as diagnose_module
    from agent_lab.paper.measure import measure_sweep

    smoke = get_scale("smoke")
    run = next(iter(plan(["table7"], "smoke").distinct.values()))
    result = train(run.config, out=tmp_path, progress=False)
    calls = []
    real = diagnose_module.diagnose_run

    def counting(run_dir, what, **kwargs):
        calls.append(tuple(what))
        return real(run_dir, what, **kwargs)

    monkeypatch.setattr(diagnose_module, "diagnose_run", counting)
    table7 = measure_sweep([(run, result)], smoke, ("correlation",))
    fig1 = measure_sweep([(run, result)], smoke, ("variance", "correlation"))
    assert calls == [("correlation",), ("variance",)]
    assert set(table7["metric"]) == {"grad_corr"} and {"grad_var", "grad_corr"} <= set(fig1["metric"])
    shared = fig1[fig1["metric"] == "grad_corr"]["value"].to_numpy()
    assert shared.tolist() == table7["value"].tolist()
