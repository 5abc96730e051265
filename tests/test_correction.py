"""AGENT, its baselines and MVR inside the training loop."""
import math

import pandas as pd
import pytest
import torch

from agent_lab import ConfigError, RunConfig, train
from agent_lab.train import prepare

WALL_CLOCK = ["wall_time", "eval_time"]
OPTIMIZERS = ("sgd", "adam", "svrg", "agent", "fixed-c", "no-gamma", "mvr", "agent-mvr", "reduce-lr")

MINI = RunConfig(dataset="cifar10-mini", train_subset=1000, test_subset=500, model="vgg16", width=0.125,
                 epochs=2, batch_size=100, lr=0.05, lr_schedule="constant", device="cpu", seed=2)


def optimizer_config(base: RunConfig, optimizer: str, **changes) -> RunConfig:
    extra = {"momentum": 0.0} if optimizer in ("mvr", "agent-mvr") else {}
    if optimizer == "adam":
        extra["lr"] = 1e-3
    return base.replace(optimizer=optimizer, **extra, **changes)


@pytest.mark.parametrize("pipeline", ["dense", "rigl"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_runs_dense_and_sparse(optimizer, pipeline, tmp_path):
    sparse = {"sparsity": 0.9, "update_every": 3} if pipeline == "rigl" else {}
    config = optimizer_config(MINI, optimizer, pipeline=pipeline, **sparse)
    result = train(config, out=tmp_path, progress=False)
    assert result.status in ("completed", "diverged")
    history = result.history
    if optimizer in ("svrg", "agent", "fixed-c", "no-gamma", "agent-mvr", "reduce-lr"):
        assert {"c", "c_hat_ema", "c_hat_star"} <= set(history.columns)
    if result.status == "completed":
        assert history["fwd_bwd"].iloc[-1] >= 2 * 1000
        if pipeline == "rigl":
            assert history["density"].iloc[-1] == pytest.approx(0.1, abs=0.01)


def test_fwd_bwd_counts_every_extra_pass(tiny_config, tmp_path):
    n = 512  # synthetic training set; 8 steps of 64 per epoch
    sgd = train(tiny_config.replace(epochs=2), out=tmp_path, progress=False)
    assert sgd.history["fwd_bwd"].tolist() == [n, 2 * n]
    agent = train(tiny_config.replace(epochs=2, optimizer="agent"), out=tmp_path, progress=False)
    # epoch 1: training n + first full-gradient pass n + snapshot gradients n;
    # epoch 2: training n + full-gradient pass n + the ĉ* forwards at the old snapshot n + snapshot gradients n
    assert agent.history["fwd_bwd"].tolist() == [3 * n, 7 * n]


def test_logged_c_follows_the_ema_and_gamma(tiny_config, tmp_path):
    config = tiny_config.replace(epochs=4, optimizer="agent", gamma=0.1, alpha=0.3, c0=0.1)
    history = train(config, out=tmp_path, progress=False).history
    assert math.isnan(history["c_hat_star"].iloc[0])  # no previous snapshot at the first refresh
    c_hat = config.c0
    expected, smoothed = [config.gamma * c_hat], [c_hat]
    for c_hat_star in history["c_hat_star"].iloc[1:]:
        c_hat = (1 - config.alpha) * c_hat + config.alpha * c_hat_star
        expected.append(config.gamma * c_hat)
        smoothed.append(c_hat)
    assert history["c"].tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert history["c_hat_ema"].tolist() == pytest.approx(smoothed, rel=1e-12, abs=1e-15)


def test_reduce_lr_runs_at_a_tenth_of_the_lr(tiny_config, tmp_path):
    history = train(tiny_config.replace(epochs=1, optimizer="reduce-lr", lr_schedule="constant"), out=tmp_path,
                    progress=False).history
    assert history["lr"].iloc[0] == pytest.approx(0.1 * tiny_config.lr)


# The default tier resumes each kind of state (snapshot + g̃, MVR's estimate, SVRG, masks, the dense
# g̃ of corrected growth); the dense cases whose kind of state another default case already resumes
# (or whose state is only the base optimizer's) are in the slow tier.
RESUME_SLOW = ("sgd", "adam", "fixed-c", "no-gamma", "mvr", "reduce-lr")


@pytest.mark.parametrize("optimizer, pipeline", [
    *(pytest.param(name, "dense", marks=pytest.mark.slow) if name in RESUME_SLOW else (name, "dense")
      for name in OPTIMIZERS),
    ("agent", "rigl"), ("agent-mvr", "set"), ("svrg", "bsr"), ("fixed-c", "rigl-itop"), ("agent", "rigl-itop-g")])
def test_resume_reproduces_the_trajectory(optimizer, pipeline, tiny_config, tmp_path):
    sparse = {} if pipeline == "dense" else {"sparsity": 0.9}
    if pipeline == "rigl-itop-g":  # growth by the corrected gradient: its dense g̃ is in the checkpoint
        pipeline, sparse["growth"], sparse["update_every"] = "rigl-itop", "corrected-gradient", 3
    if pipeline in ("rigl", "set"):
        sparse["update_every"] = 3
    config = optimizer_config(tiny_config, optimizer, pipeline=pipeline, **sparse)
    straight = train(config, out=tmp_path / "a", progress=False)
    train(config, out=tmp_path / "b", progress=False, stop_after_epoch=1)
    resumed = train(config, out=tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(resumed.history.drop(columns=WALL_CLOCK),
                                  straight.history.drop(columns=WALL_CLOCK), check_exact=True)


@pytest.mark.parametrize("pipeline", ["static", "set", "rigl", "set-itop", "rigl-itop", "bsr"])
def test_masked_positions_of_gradient_momentum_and_snapshot_state_are_zero(pipeline, tiny_config):
    schedule = {} if pipeline in ("static", "bsr") else {"update_every": 3}
    config = tiny_config.replace(epochs=2, optimizer="agent", pipeline=pipeline, sparsity=0.9, **schedule)
    trainer, _ = prepare(config)
    assert trainer.run(progress=False) == "completed"
    correction, sparsity = trainer.callbacks
    sparsifier = sparsity.sparsifier
    state = correction.corrector.per_element_state()
    for name, weight in sparsifier.params.items():
        off = ~sparsifier.masks[name]
        assert torch.count_nonzero(weight.detach()[off]) == 0
        assert torch.count_nonzero(trainer.optimizer.state[weight]["momentum_buffer"][off]) == 0
        if pipeline != "bsr":  # BSR disconnects after the step: positions the last step still trained
            assert torch.count_nonzero(weight.grad[off]) == 0  # the corrected gradient the optimizer saw
        snapshot, full_gradient = state[name]
        assert torch.count_nonzero(full_gradient[off]) == 0


def test_adaptive_mvr_sets_storms_step_size(tiny_config, tmp_path):
    config = tiny_config.replace(epochs=1, optimizer="mvr", momentum=0.0, mvr_adaptive=True)
    trainer, _ = prepare(config)
    assert trainer.run(progress=False) == "completed"
    (correction,) = trainer.callbacks
    mvr = correction.mvr
    # the lr of the last step is STORM's eta_t = k / (w + sum of squared gradient norms)^(1/3)
    assert trainer.history()["lr"].iloc[-1] != config.lr
    assert trainer.history()["lr"].iloc[-1] == pytest.approx(mvr.k / (mvr.w + mvr.sum_sq) ** (1 / 3), rel=1e-12)


@pytest.mark.parametrize("changes, field", [
    ({"optimizer": "sgd", "mvr_adaptive": True}, "mvr_adaptive"),
    ({"optimizer": "mvr", "momentum": 0.9}, "momentum"),
    ({"optimizer": "sgd", "coef_rule": "ramp"}, "coef_rule"),
    ({"optimizer": "agent", "coef_rule": "magic"}, "coef_rule"),
    ({"optimizer": "agent", "gamma": 0.0}, "gamma"),
    ({"optimizer": "agent", "alpha": 1.5}, "alpha"),
    ({"optimizer": "agent", "refresh_every": 0}, "refresh_every"),
    ({"optimizer": "sgd", "full_pass_augment": False}, "full_pass_augment"),
    ({"optimizer": "agent", "full_pass_augment": "no"}, "full_pass_augment"),
])
def test_bad_correction_settings_are_refused(changes, field):
    with pytest.raises(ConfigError, match=f"^RunConfig.{field}:"):
        RunConfig(**changes)


def test_corrected_gradient_growth_scores_g_hat_at_free_positions(tiny_config):
    """RigL-ITOP-G: free positions are scored by ĝ = g − c·(g_old − g̃) with g̃ before masking, active
    ones by the step's own ĝ; growth by the plain gradient picks other positions."""
    config = tiny_config.replace(optimizer="agent", pipeline="rigl-itop", sparsity=0.9, update_every=3, c0=0.5,
                                 gamma=0.5, growth="corrected-gradient")
    trainer, _ = prepare(config)
    corrector = next(cb.corrector for cb in trainer.callbacks if getattr(cb, "corrector", None) is not None)
    sparsifier = next(cb.sparsifier for cb in trainer.callbacks if getattr(cb, "sparsifier", None) is not None)
    assert corrector.keep_dense_full_grad
    seen = []
    original = sparsifier.record_corrected_gradients

    def check(grads):
        if sparsifier.will_update() and corrector.c > 0 and corrector._last_old:
            for name in sparsifier.params:
                i = corrector._index[name]
                live = sparsifier.params[name].grad  # the step's own ĝ (active positions corrected)
                masked = ~corrector._correctable[i]
                if not masked.any():  # a layer kept dense by the distribution
                    continue
                assert corrector._dense_full_grad[i][masked].abs().sum() > 0  # g̃ kept where masked
                assert torch.equal(grads[name][~masked], live[~masked])
                # free positions: g − c·(g_old − g̃) by hand, against the plain g the step left there
                g_old, dense = corrector._last_old[i], corrector._dense_full_grad[i]
                torch.testing.assert_close(grads[name][masked], (live - corrector.c * (g_old - dense))[masked])
                seen.append(float((grads[name][masked] - live[masked]).abs().max()))
        original(grads)

    sparsifier.record_corrected_gradients = check
    assert trainer.run(progress=False) == "completed"
    assert seen and max(seen) > 0  # the free positions' scores differ from the plain gradient's
    plain, _ = prepare(config.replace(growth="gradient"))
    assert plain.run(progress=False) == "completed"
    plain_masks = next(cb.sparsifier for cb in plain.callbacks if getattr(cb, "sparsifier", None) is not None).masks
    assert any(not torch.equal(sparsifier.masks[name], plain_masks[name]) for name in sparsifier.params)
    with pytest.raises(ConfigError, match="RunConfig.growth: 'corrected-gradient' is invalid; .* optimizer 'sgd'"):
        config.replace(optimizer="sgd")
