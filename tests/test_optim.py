import math

import pytest
import torch

from agent_lab import RunConfig
from agent_lab.optim import SGDW, build_optimizer, build_scheduler, lr_multiplier


def test_step_schedule_uses_absolute_factors_at_epoch_boundaries():
    # BSR-Net's schedule: lr x0.1 at 25% and x0.005 at 50% of 200 epochs.
    config = RunConfig(epochs=200, lr_schedule="step", lr_milestones=(0.25, 0.5), lr_factors=(0.1, 0.005))
    assert lr_multiplier(config, 0) == 1.0
    assert lr_multiplier(config, 49.99) == 1.0
    assert lr_multiplier(config, 50) == 0.1
    assert lr_multiplier(config, 99.5) == 0.1
    assert lr_multiplier(config, 100) == 0.005


def test_cosine_and_warmup():
    config = RunConfig(epochs=10, lr_schedule="cosine")
    assert lr_multiplier(config, 0) == 1.0
    assert lr_multiplier(config, 5) == pytest.approx(0.5)
    assert lr_multiplier(config, 10) == pytest.approx(0.0, abs=1e-12)
    warm = config.replace(warmup_epochs=2.0)
    assert lr_multiplier(warm, 1) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.1)))


def test_scheduler_steps_per_optimizer_step_and_warmup_never_gives_zero_lr():
    config = RunConfig(epochs=4, lr=0.1, lr_schedule="step", lr_milestones=(0.5,), lr_factors=(0.1,),
                       warmup_epochs=1.0)
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=config.lr)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch=4)
    lrs = []
    for _ in range(16):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert lrs[4:8] == pytest.approx([0.1] * 4)
    assert lrs[8:] == pytest.approx([0.01] * 8)


def test_sgdw_matches_a_float64_hand_computation():
    lr, wd, mu = 0.1, 0.05, 0.9
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    param = torch.nn.Parameter(w.clone())
    optimizer = SGDW([param], lr=lr, momentum=mu, weight_decay=wd)
    grads = [torch.tensor([0.3, -0.1, 0.2], dtype=torch.float64), torch.tensor([-0.2, 0.4, 0.1], dtype=torch.float64)]
    lr_factors = [1.0, 0.5]  # the second step runs at half the base lr: the decay follows it
    buf = torch.zeros(3, dtype=torch.float64)
    for grad, factor in zip(grads, lr_factors):
        optimizer.param_groups[0]["lr"] = lr * factor
        param.grad = grad.clone()
        optimizer.step()
        w = w * (1 - wd * factor)           # decoupled decay, scaled like the lr
        buf = mu * buf + grad if buf.any() else grad.clone()
        w = w - lr * factor * buf
    torch.testing.assert_close(param.detach(), w, rtol=0, atol=1e-15)


def test_factory_builds_the_requested_optimizer():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert type(build_optimizer(RunConfig(), params)) is torch.optim.SGD
    assert type(build_optimizer(RunConfig(weight_decay_mode="decoupled"), params)) is SGDW
    adam = build_optimizer(RunConfig(optimizer="adam", lr=1e-3, momentum=0.8), params)
    assert type(adam) is torch.optim.Adam and adam.param_groups[0]["betas"] == (0.8, 0.999)
    assert type(build_optimizer(RunConfig(optimizer="adam", weight_decay_mode="decoupled"), params)) is torch.optim.AdamW
    nesterov = build_optimizer(RunConfig(nesterov=True), params)
    assert nesterov.param_groups[0]["nesterov"] is True
