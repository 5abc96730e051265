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



def _scheduled_lrs(config: RunConfig, steps_per_epoch: int) -> list[float]:
    """The lr of every optimizer step of a run, as the training loop sees it."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=config.lr)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    lrs = []
    for _ in range(config.epochs * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_step_schedule_of_a_one_epoch_run_reaches_every_factor():
    # Defaults: milestones 50% and 75%, factors 0.1 and 0.01. 10 steps: milestones at steps 5 and round(7.5) = 8.
    config = RunConfig(epochs=1, lr=1.0, lr_schedule="step")
    assert (config.lr_milestones, config.lr_factors) == ((0.5, 0.75), (0.1, 0.01))
    lrs = _scheduled_lrs(config, steps_per_epoch=10)
    assert lrs == pytest.approx([1.0] * 5 + [0.1] * 3 + [0.01] * 2)
    assert {1.0, *config.lr_factors} <= {round(lr, 12) for lr in lrs}
    # lr_multiplier at fractional epochs agrees with the scheduler step by step
    assert [lr_multiplier(config, t / 10, 10) for t in range(10)] == pytest.approx(lrs)


def test_step_schedule_of_a_three_epoch_run_reaches_every_factor():
    # 30 steps: milestones at steps 15 (mid epoch 2) and round(22.5) = 22 (Python rounds half to even).
    config = RunConfig(epochs=3, lr=0.1, lr_schedule="step", lr_milestones=(0.5, 0.75), lr_factors=(0.1, 0.01))
    lrs = _scheduled_lrs(config, steps_per_epoch=10)
    assert lrs == pytest.approx([0.1] * 15 + [0.01] * 7 + [0.001] * 8)
    assert {0.1, 0.01, 0.001} == {round(lr, 12) for lr in lrs}
    assert [lr_multiplier(config, t / 10, 10) for t in range(30)] == pytest.approx([lr / 0.1 for lr in lrs])
    # without a step grid a milestone takes effect at training time milestone * epochs
    assert lr_multiplier(config, 1.49) == 1.0 and lr_multiplier(config, 1.5) == 0.1
    assert lr_multiplier(config, 2.24) == 0.1 and lr_multiplier(config, 2.25) == 0.01


def _epoch_rounded_multiplier(config: RunConfig, epoch: float) -> float:
    """The step schedule before milestones were exact steps: milestones rounded to whole epochs."""
    factor = 1.0
    done = math.floor(epoch + 1e-9)
    for milestone, milestone_factor in zip(config.lr_milestones, config.lr_factors):
        if done >= round(milestone * config.epochs):
            factor = milestone_factor
    return factor


@pytest.mark.parametrize("epochs, milestones, factors, steps_per_epoch", [
    (200, (0.25, 0.5), (0.1, 0.005), 391),  # BSR-Net / HYDRA on CIFAR-10 at batch 128
    (200, (0.5, 0.75), (0.1, 0.01), 391),   # the defaults
    (100, (0.5, 0.75), (0.1, 0.01), 97),
    (4, (0.5,), (0.1,), 7),
])
def test_milestones_on_epoch_boundaries_give_the_epoch_rounded_schedule(epochs, milestones, factors, steps_per_epoch):
    config = RunConfig(epochs=epochs, lr=1.0, lr_schedule="step", lr_milestones=milestones, lr_factors=factors)
    weight = torch.nn.Parameter(torch.zeros(1))
    multiplier = build_scheduler(torch.optim.SGD([weight], lr=1.0), config, steps_per_epoch).lr_lambdas[0]
    total = epochs * steps_per_epoch
    assert [multiplier(t) for t in range(total)] == [
        _epoch_rounded_multiplier(config, t / steps_per_epoch) for t in range(total)]
    assert [lr_multiplier(config, t / steps_per_epoch) for t in range(total)] == [multiplier(t) for t in range(total)]


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
