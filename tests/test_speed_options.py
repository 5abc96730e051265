"""The speed options: precision, channels_last, compile, fused passes, ĉ* from the steps, g̃ on a fraction."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from agent_lab import ConfigError, RunConfig, train
from agent_lab.data import full_pass_loader
from agent_lab.isolation import copy_without_grads
from agent_lab.optim.agent import GradientCorrector
from agent_lab.train import prepare

WALL_CLOCK = ["wall_time", "eval_time"]


# --------------------------------------------------------------------------------------------- config

@pytest.mark.parametrize("changes, field", [
    ({"precision": "fp16"}, "precision"),
    ({"precision": "tf32", "tf32": False}, "tf32"),
    ({"channels_last": "yes"}, "channels_last"),
    ({"compile": 1}, "compile"),
    ({"fused_passes": True}, "fused_passes"),                       # sgd: nothing to fuse
    ({"optimizer": "agent-mvr", "momentum": 0.0, "fused_passes": True}, "fused_passes"),
    ({"c_hat_source": "steps"}, "c_hat_source"),
    ({"optimizer": "agent", "c_hat_source": "batch"}, "c_hat_source"),
    ({"optimizer": "agent", "full_pass_fraction": 0.0}, "full_pass_fraction"),
    ({"optimizer": "agent", "full_pass_fraction": 1.5}, "full_pass_fraction"),
    ({"optimizer": "agent", "adversarial": "at", "full_grad_objective": "adversarial", "fused_passes": True},
     "fused_passes"),
])
def test_bad_speed_settings_are_refused(changes, field):
    with pytest.raises(ConfigError, match=rf"RunConfig\.{field}: "):
        RunConfig(**changes)


def test_defaults_keep_the_config_hash_and_set_options_change_it():
    base = RunConfig(optimizer="agent")
    assert base.replace(precision="fp32").config_hash() == base.config_hash()
    changed = {base.replace(**c).config_hash() for c in (
        {"precision": "bf16"}, {"precision": "tf32"}, {"channels_last": True}, {"compile": True},
        {"fused_passes": True}, {"c_hat_source": "steps"}, {"full_pass_fraction": 0.5})}
    assert len(changed) == 7 and base.config_hash() not in changed


# ------------------------------------------------------------------------------ corrector, unit level

def _model_and_data(seed=0, n=96, batch=32):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 5))
    images = (torch.rand(n, 3, 8, 8) * 255).to(torch.uint8)
    labels = torch.arange(n) % 5
    return model, images, labels, full_pass_loader(images, labels, batch, seed=seed)


def _loss(model, x, y):
    return F.cross_entropy(model(x), y)


def _moved(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))


def test_fused_refresh_and_step_match_the_sequential_passes():
    results = []
    for fused in (False, True):
        model, images, labels, passes = _model_and_data()
        corrector = GradientCorrector(model, rule="agent", gamma=0.5, c0=0.5)
        corrector.fused = fused
        corrector.refresh(passes.epoch(0), _loss)
        torch.manual_seed(1)
        _moved(model)
        report = corrector.refresh(passes.epoch(1), _loss)   # a ĉ* from two different points
        _moved(model)
        x, y = next(iter(passes.epoch(9)))
        model.zero_grad()
        if fused:
            loss, logits = corrector.paired_backward_(lambda m: (lambda out: (F.cross_entropy(out, y), out))(m(x)))
            spent = corrector.correct_(x, y, _loss)
        else:
            loss = _loss(model, x, y)
            loss.backward()
            spent = corrector.correct_(x, y, _loss)
        grads = [p.grad.clone() for p in model.parameters()]
        buffers = [b.clone() for b in model.buffers()]
        results.append((report, float(loss.detach()), grads, buffers, spent,
                        [g.clone() for g in corrector.full_gradient_state()[0]]))
    (r0, l0, g0, b0, s0, full0), (r1, l1, g1, b1, s1, full1) = results
    # a regression over 3 batch losses: float32 rounding of the losses (~1e-7) is amplified
    assert r1["c_hat_star"] == pytest.approx(r0["c_hat_star"], rel=1e-4)
    assert r1["fwd_bwd"] == r0["fwd_bwd"] == 2 * 96
    assert l1 == pytest.approx(l0, rel=1e-6)
    for a, b in zip(g0 + full0, g1 + full1):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    for a, b in zip(b0, b1):  # BN running statistics: as one ordinary forward leaves them
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
    assert (s0, s1) == (32, 0)  # the fused call paid for the snapshot pass


def test_paired_backward_is_a_no_op_before_the_first_refresh():
    model, images, labels, passes = _model_and_data()
    corrector = GradientCorrector(model)
    corrector.fused = True
    x, y = next(iter(passes.epoch(0)))
    assert corrector.paired_backward_(lambda m: (_loss(m, x, y), None)) is None
    assert all(p.grad is None for p in model.parameters())


def test_c_hat_from_steps_regresses_the_steps_loss_pairs_in_float64():
    model, images, labels, passes = _model_and_data()
    corrector = GradientCorrector(model, rule="agent", gamma=0.1, alpha=0.3, c0=0.2)
    corrector.c_hat_from_steps = True
    first = corrector.refresh(passes.epoch(0), _loss)
    assert first["fwd_bwd"] == 96 and math.isnan(first["c_hat_star"])
    snapshot = copy_without_grads(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    cur, old = [], []
    for step, (x, y) in enumerate(passes.epoch(5)):
        optimizer.zero_grad()
        loss = _loss(model, x, y)
        loss.backward()
        with torch.no_grad():
            snapshot.train()
            old.append(float(_loss(snapshot, x, y).double()))
        cur.append(float(loss.detach()))
        assert corrector.correct_(x, y, _loss, live_loss=loss.detach()) == len(y)
        optimizer.step()
    with pytest.raises(ValueError, match="live_loss"):
        corrector.correct_(x, y, _loss)
    report = corrector.refresh(passes.epoch(6), _loss)
    expected = np.cov(np.array([cur, old]), ddof=1)[0, 1] / np.var(old, ddof=1)
    assert report["c_hat_star"] == pytest.approx(expected, rel=1e-6)
    assert report["fwd_bwd"] == 96  # no forwards at θ̃ in the refresh
    assert corrector.c_hat == pytest.approx(0.7 * 0.2 + 0.3 * expected)


def test_c_hat_from_steps_takes_a_forward_when_c_is_zero():
    model, images, labels, passes = _model_and_data()
    corrector = GradientCorrector(model, rule="agent", c0=0.0)
    corrector.c_hat_from_steps = True
    corrector.refresh(passes.epoch(0), _loss)
    x, y = next(iter(passes.epoch(1)))
    loss = _loss(model, x, y)
    loss.backward()
    before = [p.grad.clone() for p in model.parameters()]
    assert corrector.correct_(x, y, _loss, live_loss=loss.detach()) == 32  # a forward at θ̃, counted whole
    assert all(torch.equal(a, p.grad) for a, p in zip(before, model.parameters()))  # c = 0: no change
    state = corrector.state_dict()
    assert len(state["step_losses"]) == 1 and state["step_losses"][0][0] == pytest.approx(float(loss.detach()))


# ------------------------------------------------------------------------------------- in the loop

class _FirstBatches:
    """The first ``steps`` batches of a loader's epochs (a few steps of the real loop)."""

    def __init__(self, loader, steps):
        self.loader, self.steps = loader, steps

    def epoch(self, epoch):
        for step, batch in enumerate(self.loader.epoch(epoch)):
            if step == self.steps:
                return
            yield batch

    def __len__(self):
        return self.steps


# Real images: the synthetic set's flat patches tie in max-pooling, which routes gradients by memory layout.
REAL = RunConfig(dataset="cifar10-mini", train_subset=500, test_subset=100, model="vgg16", width=0.125, epochs=2,
                 batch_size=100, lr=0.05, lr_schedule="constant", device="cpu", seed=2)


def _first_step(config):
    """The parameter update of the loop's first step (refresh included) and the passes it counted."""
    trainer, _ = prepare(config)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train_loader = _FirstBatches(trainer.train_loader, 1)
    trainer.train_epoch()
    update = torch.cat([(p.detach() - b).flatten() for p, b in zip(trainer.model.parameters(), before)])
    return update, trainer.state.fwd_bwd


def _assert_same_first_step(config, changed, tolerance):
    # One step only: this small VGG amplifies float rounding by orders of magnitude per step (BN
    # channels of tiny batch variance), so longer trajectories part for any change of summation order.
    # For scale: gamma 0.5 -> 0.45 moves the first AGENT update by 6e-2 (relative norm).
    expected, passes = _first_step(config)
    got, changed_passes = _first_step(changed)
    assert changed_passes == passes
    assert float((got - expected).norm() / expected.norm()) < tolerance


def test_fused_passes_take_the_loops_first_step_as_the_sequential_passes():
    config = REAL.replace(optimizer="agent", c0=1.0, gamma=0.5)
    _assert_same_first_step(config, config.replace(fused_passes=True), 1e-4)


def test_fused_passes_with_adversarial_training_and_sparsity():
    config = REAL.replace(optimizer="agent", c0=1.0, gamma=0.5, adversarial="trades", attack_steps=2,
                          pipeline="rigl", sparsity=0.9, update_every=2, robust_eval="none")
    _assert_same_first_step(config, config.replace(fused_passes=True), 1e-4)


def test_fused_passes_train_whole_epochs(tiny_config, tmp_path):
    config = tiny_config.replace(epochs=2, optimizer="agent")
    plain = train(config, out=tmp_path, progress=False).history
    fused = train(config.replace(fused_passes=True), out=tmp_path, progress=False).history
    assert fused["fwd_bwd"].tolist() == plain["fwd_bwd"].tolist()
    assert np.isfinite(fused["c_hat_star"].iloc[1]) and fused["train_loss"].iloc[1] < fused["train_loss"].iloc[0]


def test_steps_source_and_fraction_cut_the_counted_passes(tiny_config, tmp_path):
    n = 512  # 8 batches of 64
    config = tiny_config.replace(epochs=2, optimizer="agent")
    steps = train(config.replace(c_hat_source="steps"), out=tmp_path, progress=False).history
    # epoch 1: training n + full-gradient pass n + snapshot gradients n; epoch 2: no ĉ* forwards in the refresh
    assert steps["fwd_bwd"].tolist() == [3 * n, 6 * n]
    assert np.isfinite(steps["c_hat_star"].iloc[1])
    quarter = train(config.replace(full_pass_fraction=0.25), out=tmp_path, progress=False).history
    # a quarter of the pass: 2 of the 8 batches, for g̃ and for the ĉ* forwards
    assert quarter["fwd_bwd"].tolist() == [2 * n + n // 4, 2 * n + n // 4 + 2 * n + 2 * (n // 4)]


def test_fraction_estimates_the_full_gradient_on_the_first_shuffled_batches(tiny_config):
    config = tiny_config.replace(epochs=1, optimizer="agent", full_pass_fraction=0.25)
    trainer, _ = prepare(config)
    correction = trainer.callbacks[0]
    model = trainer.model
    batches = list(correction.full_pass_loader.epoch(0))[:2]
    expected = [torch.zeros_like(p) for p in model.parameters()]
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    for x, y in batches:
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        for e, p in zip(expected, model.parameters()):
            e.add_(p.grad, alpha=len(y) / 128)
    model.load_state_dict(saved)
    model.zero_grad()
    correction._refresh_if_due(trainer)
    for e, g in zip(expected, correction.corrector.full_gradient_state()[0]):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("changes", [{"c_hat_source": "steps"},
                                     pytest.param({"fused_passes": True}, marks=pytest.mark.slow)])
def test_resume_is_exact_with_the_speed_options(changes, tiny_config, tmp_path):
    config = tiny_config.replace(optimizer="agent", **changes)
    straight = train(config, out=tmp_path / "a", progress=False)
    train(config, out=tmp_path / "b", progress=False, stop_after_epoch=2)
    resumed = train(config, out=tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(resumed.history.drop(columns=WALL_CLOCK),
                                  straight.history.drop(columns=WALL_CLOCK), check_exact=True)


def test_the_run_meta_records_how_it_computed(tiny_config, tmp_path):
    result = train(tiny_config.replace(epochs=1, precision="bf16", channels_last=True), out=tmp_path, progress=False)
    assert result.meta["execution"] == {"precision": "bf16", "autocast": "bfloat16", "channels_last": True,
                                        "compile": False, "fused_passes": False, "ranks": 1}
    assert "cuda_matmul_allow_tf32" in result.meta["precision"]


def test_bf16_autocasts_the_training_passes_only(tiny_config, tmp_path):
    config = tiny_config.replace(epochs=1, optimizer="agent", precision="bf16")
    trainer, _ = prepare(config)
    seen = []
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda module, args, out: seen.append((module.training, out.dtype)))
    assert trainer.run(progress=False) == "completed"
    training = {dtype for is_training, dtype in seen if is_training}
    evaluation = {dtype for is_training, dtype in seen if not is_training}
    assert training == {torch.bfloat16} and evaluation == {torch.float32}
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in trainer.model.parameters())
    assert all(g.dtype == torch.float32 for g in trainer.callbacks[0].corrector.full_gradient_state()[0])
    row = trainer.history().iloc[-1]
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])


def test_channels_last_takes_the_same_first_step():
    config = REAL.replace(optimizer="agent", pipeline="rigl", sparsity=0.9, update_every=2)
    trainer, _ = prepare(config.replace(channels_last=True))
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    # oneDNN's channels-last convolutions on this CPU are less exact than the default path (1e-2 vs
    # 1e-3 relative error of the first layer's gradient against float64; README, performance)
    _assert_same_first_step(config, config.replace(channels_last=True), 3e-2)


@pytest.mark.slow
def test_compile_trains_and_the_snapshot_never_recompiles(tiny_config, tmp_path):
    from torch._dynamo.utils import counters
    config = tiny_config.replace(epochs=3, optimizer="agent", compile=True)
    trainer, _ = prepare(config)
    graphs = []
    trainer.run(progress=False, on_epoch_end=lambda t: graphs.append(counters["stats"]["unique_graphs"]))
    assert graphs[1] == graphs[2]  # refreshes copy into the compiled snapshot: no new graphs
    _assert_same_first_step(REAL.replace(optimizer="agent"), REAL.replace(optimizer="agent", compile=True), 1e-3)
