"""Adversarial training and robust evaluation: PGD, AT, TRADES, robust accuracy and the loop."""
import copy
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from agent_lab import ConfigError, RunConfig, train
from agent_lab.adversarial import (PGD, TRADES, MadryAT, build_objective, generator_for, named_attack,
                                   robust_evaluate)
from agent_lab.adversarial.attacks import TRADES_START_STD
from agent_lab.hooks import Batch, Objective
from agent_lab.train import Trainer, prepare

WALL_CLOCK = ["wall_time", "eval_time"]

# Real images, tiny network: 256 training examples (4 steps of 64), 200 test examples.
MINI = RunConfig(dataset="cifar10-mini", train_subset=256, test_subset=200, model="vgg16", width=0.125,
                 epochs=2, batch_size=64, eval_batch_size=100, lr=0.05, lr_schedule="constant", device="cpu",
                 seed=1, attack_steps=2, robust_eval="pgd10", robust_eval_subset=50, eval_every=1)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run_store(tmp_path_factory):
    """A run folder shared by the tests of this module: an identical config trains once."""
    return tmp_path_factory.mktemp("adversarial_runs")


def _run(config: RunConfig, out) -> "object":
    return train(config, out=out, progress=False)


# --------------------------------------------------------------------------------------------
# Small models and data
# --------------------------------------------------------------------------------------------

def _cnn(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
              nn.Linear(4 * 4 * 4, 12), nn.BatchNorm1d(12), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(12, 3))
    return nn.Sequential(*layers)


def _images(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 8, 8, generator=g)
    x[0, 0, 0, :4] = torch.tensor([0.0, 1.0, 0.0, 1.0])  # pixels on the box boundary
    return x, torch.randint(0, 3, (n,), generator=g)


def _easy_problem(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs uniform in [0,1]^16, labelled by a fixed linear rule, with a margin around the boundaries."""
    weights = torch.Generator().manual_seed(123)
    w = torch.randn(3, 16, generator=weights)
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    while sum(len(y) for y in ys) < n:
        x = torch.rand(4 * n, 16, generator=g)
        scores = (x - 0.5) @ w.T
        top = scores.topk(2, dim=1).values
        keep = (top[:, 0] - top[:, 1]) > 0.3
        xs.append(x[keep])
        ys.append(scores[keep].argmax(1))
    return torch.cat(xs)[:n], torch.cat(ys)[:n]


def _batches(x: torch.Tensor, y: torch.Tensor, size: int):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


@pytest.fixture(scope="module")
def trained():
    """A small BatchNorm MLP trained to high clean accuracy on the easy problem (and its test batches)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))
        x, y = _easy_problem(1024, seed=1)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        g = torch.Generator().manual_seed(2)
        model.train()
        for _ in range(300):
            idx = torch.randint(0, len(y), (128,), generator=g)
            optimizer.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
        model.eval()
        x_test, y_test = _easy_problem(256, seed=5)
        with torch.no_grad():
            clean_acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        assert clean_acc > 0.9
        return model, _batches(x_test, y_test, 64)
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# 1-2. ε = 0 and the feasible set
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("start", ["uniform", "normal", "none"])
def test_epsilon_zero_returns_the_clean_inputs(start):
    model = _cnn()
    x, y = _images()
    x_adv = PGD(epsilon=0.0, step_size=0.1, steps=5, random_start=start).perturb(model, x, y)
    assert torch.equal(x_adv, x)
    assert x_adv.data_ptr() != x.data_ptr()  # a copy, not the caller's tensor


def test_epsilon_zero_robust_accuracy_is_clean_accuracy(trained):
    model, batches = trained
    result = robust_evaluate(model, batches, PGD(epsilon=0.0, steps=10), restarts=3, seed=4)
    assert result.n == sum(len(y) for _, y in batches)
    assert result.robust_acc == result.clean_acc
    assert result.per_example["robust"].tolist() == result.per_example["clean_correct"].tolist()
    assert (result.per_example["fooled_at"] == -1).all()


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
@pytest.mark.parametrize("loss", ["ce", "kl"])
@pytest.mark.parametrize("start", ["uniform", "normal", "none"])
@pytest.mark.parametrize("steps", [0, 3])
def test_perturbation_stays_in_the_ball_and_the_box(steps, start, loss, bn_mode):
    model = _cnn()
    x, y = _images()
    for eps in (1 / 255, 8 / 255, 0.3):
        attack = PGD(epsilon=eps, step_size=eps / 2, steps=steps, random_start=start, loss=loss, bn_mode=bn_mode)
        x_adv = attack.perturb(model, x, y, generator=generator_for("cpu", 7))
        assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
        assert not x_adv.requires_grad
        assert (x_adv - x).abs().max().item() <= eps + 1e-6
        assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
        if steps == 0 and start == "none":
            assert torch.equal(x_adv, x)
        elif steps == 0 and start == "normal":  # TRADES' small start, clipped to the box
            assert (x_adv - x).abs().max().item() <= min(eps, 10 * TRADES_START_STD)
        if steps > 0 and not (loss == "kl" and start == "none"):
            assert not torch.equal(x_adv, x)
    if loss == "kl" and start == "none":
        return  # KL(p(x) ‖ p(x)) is at its minimum: the gradient at the start is (numerically) zero
    # large steps land on the corners of the feasible set: x ± ε clipped to [0, 1]
    eps = 0.1
    x_adv = PGD(epsilon=eps, step_size=1.0, steps=2, random_start=start, loss=loss, bn_mode=bn_mode).perturb(
        model, x, y)
    low, high = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    on_corner = (x_adv == low) | (x_adv == high)
    assert on_corner.float().mean().item() > 0.95  # all but coordinates with a zero gradient


def test_uniform_start_fills_the_ball_and_is_seeded():
    x = torch.full((4000, 1), 0.5)
    y = torch.zeros(4000, dtype=torch.int64)
    model = nn.Linear(1, 2)
    attack = PGD(epsilon=0.2, steps=0)
    a = attack.perturb(model, x, y, generator=generator_for("cpu", 1, 2))
    b = attack.perturb(model, x, y, generator=generator_for("cpu", 1, 2))
    c = attack.perturb(model, x, y, generator=generator_for("cpu", 1, 3))
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = a - x
    assert d.min().item() < -0.19 and d.max().item() > 0.19 and abs(d.mean().item()) < 0.01
    # without a generator the start is deterministic too
    assert torch.equal(attack.perturb(model, x, y), attack.perturb(model, x, y))


# --------------------------------------------------------------------------------------------
# 3. Robust accuracy on a trained model
# --------------------------------------------------------------------------------------------

def test_robust_accuracy_is_monotone_in_epsilon(trained):
    model, batches = trained
    results = [robust_evaluate(model, batches, named_attack("pgd20", eps), seed=1)
               for eps in (0.0, 2 / 255, 8 / 255, 32 / 255)]
    clean = results[0].clean_acc
    robust = [r.robust_acc for r in results]
    assert all(r.clean_acc == clean for r in results)
    assert robust[0] == clean
    assert all(a >= b for a, b in zip(robust, robust[1:])), robust
    assert robust[-1] < clean - 0.2, robust  # the attack does bite at a large radius
    for r in results:
        table = r.per_example
        assert (~table["robust"] | table["clean_correct"]).all()  # robust implies clean-correct
        assert r.robust_acc <= r.clean_acc


def test_robust_accuracy_is_monotone_in_restarts(trained):
    model, batches = trained
    attack = PGD(epsilon=6 / 255, step_size=1 / 255, steps=3)  # weak: restarts matter
    results = {r: robust_evaluate(model, batches, attack, restarts=r, seed=3) for r in (1, 2, 4)}
    accs = [results[r].robust_acc for r in (1, 2, 4)]
    assert accs[0] >= accs[1] >= accs[2]
    assert accs[0] > accs[2], accs  # extra restarts found more adversarial examples
    for r, result in results.items():
        table = result.per_example
        assert table["index"].tolist() == list(range(result.n))
        assert table["label"].tolist() == torch.cat([y for _, y in batches]).tolist()
        assert (~table["robust"] | table["clean_correct"]).all()
        assert table["fooled_at"].between(-1, r - 1).all()
        # fooled_at is set exactly for the clean-correct examples an attack broke
        broken = table["clean_correct"] & ~table["robust"]
        assert ((table["fooled_at"] >= 0) == broken).all()
        assert result.robust_acc <= result.clean_acc
    # restart r is seeded the same whatever the total: outcomes nest exactly
    one, two, four = (results[r].per_example for r in (1, 2, 4))
    assert (~two["robust"] | one["robust"]).all() and (~four["robust"] | two["robust"]).all()
    assert two["fooled_at"][one["fooled_at"] == 0].eq(0).all()
    assert four["fooled_at"][two["fooled_at"] >= 0].tolist() == two["fooled_at"][two["fooled_at"] >= 0].tolist()
    # attack passes: restart 0 attacks every clean-correct example
    assert results[1].passes == attack.steps * int(one["clean_correct"].sum())
    assert results[1].summary()["robust_acc"] == accs[0]


def test_robust_evaluate_replays_exactly(trained):
    model, batches = trained
    attack = named_attack("pgd10", 8 / 255)
    a = robust_evaluate(model, batches, attack, restarts=2, seed=9)
    b = robust_evaluate(model, batches, attack, restarts=2, seed=9)
    pd.testing.assert_frame_equal(a.per_example, b.per_example)


def test_named_attacks_follow_their_step_rules():
    eps = 8 / 255
    assert named_attack("pgd10", eps) == PGD(epsilon=eps, step_size=eps / 4, steps=10)
    assert named_attack("pgd20", eps).steps == 20
    assert named_attack("pgd20", eps).step_size == pytest.approx(2.5 * eps / 20)
    assert named_attack("pgd50", eps, bn_mode="train") == PGD(epsilon=eps, step_size=2.5 * eps / 50, steps=50,
                                                               bn_mode="train")


# --------------------------------------------------------------------------------------------
# 4. The attack increases the loss
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["ce", "kl"])
def test_attack_increases_the_loss_on_every_batch(trained, loss):
    model, batches = trained
    attack = PGD(epsilon=8 / 255, step_size=2 / 255, steps=10, loss=loss,
                 random_start="uniform" if loss == "ce" else "normal")
    model.eval()
    for b, (x, y) in enumerate(batches):
        x_adv = attack.perturb(model, x, y, generator=generator_for("cpu", 0, b))
        with torch.no_grad():
            clean_logits, adv_logits = model(x), model(x_adv)
            if loss == "ce":
                before = F.cross_entropy(clean_logits, y, reduction="sum")
                after = F.cross_entropy(adv_logits, y, reduction="sum")
            else:
                before = torch.zeros(())
                after = F.kl_div(F.log_softmax(adv_logits, 1), F.softmax(clean_logits, 1), reduction="sum")
        assert after.item() > before.item(), (b, before.item(), after.item())


def test_attack_increases_the_loss_of_an_untrained_cnn():
    model = _cnn(seed=3).eval()
    for b in range(3):
        x, y = _images(32, seed=b)
        x_adv = PGD(epsilon=4 / 255, step_size=1 / 255, steps=5).perturb(model, x, y)
        with torch.no_grad():
            assert F.cross_entropy(model(x_adv), y, reduction="sum") > F.cross_entropy(model(x), y, reduction="sum")


# --------------------------------------------------------------------------------------------
# 5. The model and the global RNG are left exactly as they were
# --------------------------------------------------------------------------------------------

def _model_state(model: nn.Module):
    return ([m.training for m in model.modules()],
            [(n, t.detach().clone()) for n, t in model.named_parameters()],
            [(n, t, t.detach().clone()) for n, t in model.named_buffers()])


def _assert_model_state(model: nn.Module, state) -> None:
    modes, params, buffers = state
    assert [m.training for m in model.modules()] == modes
    for (name, saved), (name2, p) in zip(params, model.named_parameters()):
        assert name == name2 and torch.equal(p, saved), name
    now = dict(model.named_buffers())
    assert set(now) == {name for name, _, _ in buffers}
    for name, obj, saved in buffers:
        assert now[name] is obj, name  # the same tensor object
        assert torch.equal(obj, saved), name


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
@pytest.mark.parametrize("bn_mode", ["eval", "train"])
@pytest.mark.parametrize("loss", ["ce", "kl"])
def test_perturb_leaves_the_model_and_rng_untouched(mode, bn_mode, loss):
    model = _cnn()
    model.train(mode != "eval")
    if mode == "mixed":
        model[1].eval()  # a frozen BatchNorm inside a training model
    x, y = _images()
    with torch.no_grad():  # non-trivial running statistics
        model.train()
        model(torch.rand(8, 3, 8, 8))
        model.train(mode != "eval")
        if mode == "mixed":
            model[1].eval()
    grads = {}
    for i, p in enumerate(model.parameters()):
        if i % 2 == 0:
            p.grad = torch.full_like(p, float(i))
            grads[i] = p.grad
    state = _model_state(model)
    rng = torch.get_rng_state()
    attack = PGD(epsilon=8 / 255, steps=3, loss=loss, bn_mode=bn_mode,
                 random_start="uniform" if loss == "ce" else "normal")
    attack.perturb(model, x, y)
    attack.perturb(model, x, y, generator=generator_for("cpu", 5))
    _assert_model_state(model, state)
    assert torch.equal(torch.get_rng_state(), rng)
    for i, p in enumerate(model.parameters()):
        if i in grads:
            assert p.grad is grads[i] and torch.equal(p.grad, torch.full_like(p, float(i)))
        else:
            assert p.grad is None


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_robust_evaluate_leaves_the_model_and_rng_untouched(bn_mode):
    model = _cnn().train()
    with torch.no_grad():
        model(torch.rand(8, 3, 8, 8))
    p0 = next(model.parameters())
    p0.grad = torch.ones_like(p0)
    grad = p0.grad
    state = _model_state(model)
    rng = torch.get_rng_state()
    result = robust_evaluate(model, [_images(16, 0), _images(16, 1)], named_attack("pgd10", 8 / 255, bn_mode=bn_mode),
                             restarts=2)
    assert result.n == 32
    _assert_model_state(model, state)
    assert torch.equal(torch.get_rng_state(), rng)
    assert p0.grad is grad and torch.equal(grad, torch.ones_like(p0))


def test_train_mode_attack_keeps_the_global_rng_with_dropout():
    model = _cnn(dropout=0.5).eval()
    x, y = _images()
    rng = torch.get_rng_state()
    PGD(epsilon=8 / 255, steps=2, bn_mode="train").perturb(model, x, y)
    assert torch.equal(torch.get_rng_state(), rng)


def test_perturb_works_under_no_grad():
    model = _cnn().eval()
    x, y = _images()
    expected = PGD(epsilon=8 / 255, steps=2).perturb(model, x, y)
    with torch.no_grad():
        x_adv = PGD(epsilon=8 / 255, steps=2).perturb(model, x, y)
    assert torch.equal(x_adv, expected)


# --------------------------------------------------------------------------------------------
# 6. Bad inputs
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("epsilon", -1.0), ("epsilon", 2.0), ("epsilon", float("nan")),
                                          ("step_size", -0.1), ("steps", -1), ("steps", 2.5), ("steps", True),
                                          ("loss", "l2"), ("random_start", "x"), ("bn_mode", "frozen")])
def test_pgd_rejects_bad_fields(field, value):
    with pytest.raises(ValueError, match=rf"PGD\.{field}\b"):
        PGD(**{field: value})


def test_unknown_attack_names_and_restarts_are_rejected(trained):
    with pytest.raises(ValueError, match="pgd7.*valid choices: pgd10, pgd20, pgd50"):
        named_attack("pgd7")
    model, batches = trained
    for restarts in (0, -1, 1.0, True):
        with pytest.raises(ValueError, match="restarts"):
            robust_evaluate(model, batches, PGD(), restarts=restarts)


def test_objectives_reject_the_wrong_attack_loss():
    with pytest.raises(ValueError, match="attack.loss"):
        MadryAT(PGD(loss="kl"))
    with pytest.raises(ValueError, match="attack.loss"):
        TRADES(PGD(loss="ce"))
    for beta in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="beta"):
            TRADES(PGD(loss="kl"), beta=beta)


# --------------------------------------------------------------------------------------------
# 7. Objectives
# --------------------------------------------------------------------------------------------

def test_madry_at_loss_is_the_cross_entropy_on_the_prepared_batch():
    model = _cnn().train()
    x, y = _images(16)
    objective = MadryAT(PGD(epsilon=8 / 255, steps=3), seed=4)
    batch = objective.prepare(model, Batch(x, y, epoch=1, step=2))
    assert batch.x_adv is not None and not torch.equal(batch.x_adv, x)
    loss, logits = objective.loss(model, batch)
    assert torch.equal(logits, model(batch.x_adv))
    assert torch.equal(loss, F.cross_entropy(model(batch.x_adv), y))
    # float64 by hand: mean of -log softmax of the true class
    double = copy.deepcopy(model).double()
    log_p = torch.log_softmax(double(batch.x_adv.double()), dim=1)
    assert loss.item() == pytest.approx(-log_p[torch.arange(16), y].mean().item(), rel=1e-5)
    assert objective.passes_per_example == 1 + 3


def test_trades_loss_is_ce_plus_beta_kl():
    model = _cnn().train()
    x, y = _images(16)
    beta = 6.0
    objective = TRADES(PGD(epsilon=8 / 255, steps=3, loss="kl", random_start="normal"), beta=beta, seed=4)
    batch = objective.prepare(model, Batch(x, y, epoch=0, step=0))
    loss, logits = objective.loss(model, batch)
    assert torch.equal(logits, model(x))  # train_acc is measured on clean logits
    clean, adv = model(x), model(batch.x_adv)
    expected = F.cross_entropy(clean, y) + beta * F.kl_div(F.log_softmax(adv, 1), F.softmax(clean, 1),
                                                           reduction="batchmean")
    assert torch.equal(loss, expected)
    double = copy.deepcopy(model).double()
    log_p, log_q = torch.log_softmax(double(x.double()), 1), torch.log_softmax(double(batch.x_adv.double()), 1)
    ce = -log_p[torch.arange(16), y].mean()
    kl = (log_p.exp() * (log_p - log_q)).sum(1).mean()
    assert kl.item() > 0
    assert loss.item() == pytest.approx((ce + beta * kl).item(), rel=1e-5)
    assert objective.passes_per_example == 2 + 3 + 1


@pytest.mark.parametrize("kind", ["at", "trades"])
def test_prepare_is_idempotent_and_replays_from_seed_epoch_step(kind):
    model = _cnn().train()
    x, y = _images(16)
    config = RunConfig(dataset="synthetic", adversarial=kind, attack_steps=2, seed=5)
    objective = build_objective(config)
    assert isinstance(objective, MadryAT if kind == "at" else TRADES)
    assert objective.attack.random_start == ("uniform" if kind == "at" else "normal")
    batch = objective.prepare(model, Batch(x, y, 2, 3))
    first = batch.x_adv
    assert objective.prepare(model, batch).x_adv is first
    objective.loss(copy.deepcopy(model), batch)  # (a train-mode forward moves the running statistics)
    assert batch.x_adv is first  # loss does not attack a prepared batch again
    again = objective.prepare(model, Batch(x, y, 2, 3)).x_adv
    assert torch.equal(again, first)
    assert torch.equal(build_objective(config).prepare(model, Batch(x, y, 2, 3)).x_adv, first)
    for epoch, step in ((2, 4), (3, 3)):
        assert not torch.equal(objective.prepare(model, Batch(x, y, epoch, step)).x_adv, first)
    other_seed = build_objective(config.replace(seed=6))
    assert not torch.equal(other_seed.prepare(model, Batch(x, y, 2, 3)).x_adv, first)


def test_robust_evaluation_attacks_the_eval_mode_network_whatever_the_training_attack_bn():
    config = RunConfig(dataset="synthetic", adversarial="at", attack_bn="train", robust_eval="pgd20", device="cpu")
    trainer, _ = prepare(config)
    assert trainer.objective.attack.bn_mode == "train"
    assert trainer.robust_monitor.attack.bn_mode == "eval"


def test_build_objective_follows_the_config():
    assert type(build_objective(RunConfig(dataset="synthetic"))) is Objective
    at = build_objective(RunConfig(dataset="synthetic", adversarial="at", epsilon=4 / 255, attack_step=1 / 255,
                                   attack_steps=7, attack_bn="train", seed=3))
    assert at.attack == PGD(epsilon=4 / 255, step_size=1 / 255, steps=7, random_start="uniform", loss="ce",
                            bn_mode="train")
    assert at.seed == 3
    trades = build_objective(RunConfig(dataset="synthetic", adversarial="trades", trades_beta=1.5))
    assert trades.beta == 1.5 and trades.attack.loss == "kl" and trades.attack.random_start == "normal"


# --------------------------------------------------------------------------------------------
# 8. TRADES with β = 0 is standard training
# --------------------------------------------------------------------------------------------

def test_trades_with_zero_beta_trains_exactly_like_standard_training(tiny_config, tmp_path):
    base = tiny_config.replace(epochs=2, train_subset=256, test_subset=64)
    standard = _run(base, tmp_path)
    trades = _run(base.replace(adversarial="trades", trades_beta=0.0, robust_eval="pgd10", robust_eval_subset=32),
                  tmp_path)
    assert standard.status == trades.status == "completed"
    columns = ["train_loss", "train_acc", "test_loss", "test_acc", "fwd_bwd"]
    pd.testing.assert_frame_equal(trades.history[columns], standard.history[columns], check_exact=True)
    assert trades.history["robust_n"].tolist() == [32, 64]
    a, b = standard.load_model(), trades.load_model()
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), name


def test_trades_zero_beta_term_adds_exact_zeros_to_the_gradient():
    x, y = _images(16)
    model = _cnn(seed=2).train()
    reference = copy.deepcopy(model)
    objective = TRADES(PGD(epsilon=8 / 255, steps=2, loss="kl", random_start="normal"), beta=0.0,
                       skip_zero_beta=False)
    assert not objective.skip and objective.passes_per_example == 2 + 2 + 1
    batch = objective.prepare(model, Batch(x, y, 0, 0))
    assert batch.x_adv is not None and not torch.equal(batch.x_adv, x)
    loss, _ = objective.loss(model, batch)
    loss.backward()
    F.cross_entropy(reference(x), y).backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p.grad, q.grad), name
    assert torch.equal(loss.detach(), F.cross_entropy(reference(x), y).detach())
    # with skipping (the default) nothing is attacked
    skipping = TRADES(PGD(loss="kl"), beta=0.0)
    assert skipping.skip and skipping.passes_per_example == 1
    assert skipping.prepare(model, Batch(x, y, 0, 0)).x_adv is None


# --------------------------------------------------------------------------------------------
# 9. Adversarial training inside the loop
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pipeline", ["dense", "bsr"])
@pytest.mark.parametrize("kind", ["at", "trades"])
def test_adversarial_runs_complete_with_robust_accuracy(kind, pipeline, run_store):
    sparse = {"sparsity": 0.9} if pipeline == "bsr" else {}
    result = _run(MINI.replace(adversarial=kind, pipeline=pipeline, **sparse), run_store)
    assert result.status == "completed"
    history = result.history
    assert history["epoch"].tolist() == [1, 2]
    robust = history["robust_acc"]
    assert robust.map(math.isfinite).all() and robust.between(0, 1).all()
    assert history["robust_n"].tolist() == [50, 200]
    assert history["train_loss"].map(math.isfinite).all()
    n = result.meta["data"]["train_examples"]
    assert n == 256
    steps = MINI.attack_steps
    per_example = 1 + steps if kind == "at" else 2 + steps + 1
    if pipeline == "dense":
        assert history["fwd_bwd"].tolist() == [n * per_example, 2 * n * per_example]
    else:
        assert history["density"].iloc[-1] == pytest.approx(0.1, abs=0.01)


def test_standard_run_counts_one_pass_and_has_no_robust_columns(run_store):
    result = _run(MINI.replace(epochs=1, robust_eval=None), run_store)
    assert result.history["fwd_bwd"].tolist() == [256]
    assert "robust_acc" not in result.history.columns
    # a robust evaluation of a standard run on request
    result = _run(MINI.replace(epochs=1, robust_eval="pgd10", robust_eval_subset=None, test_subset=50), run_store)
    assert result.history["fwd_bwd"].tolist() == [256]
    assert result.history["robust_n"].tolist() == [50]
    assert result.history["robust_acc"].iloc[0] <= result.history["test_acc"].iloc[0]


# --------------------------------------------------------------------------------------------
# 10. AGENT under adversarial training
# --------------------------------------------------------------------------------------------

AGENT_AT = RunConfig(dataset="synthetic", train_subset=128, test_subset=32, model="vgg16", width=0.125, epochs=1,
                     batch_size=64, lr=0.05, lr_schedule="constant", device="cpu", seed=3, adversarial="at",
                     attack_steps=1, optimizer="agent", robust_eval="none")


def _count_attacks(monkeypatch):
    calls, outputs, used = [], [], []
    perturb, loss = PGD.perturb, MadryAT.loss

    def counting_perturb(self, model, x, y, **kwargs):
        out = perturb(self, model, x, y, **kwargs)
        calls.append(len(y))
        outputs.append(out)
        return out

    def recording_loss(self, model, batch):
        value = loss(self, model, batch)
        used.append(batch.x_adv)
        return value

    monkeypatch.setattr(PGD, "perturb", counting_perturb)
    monkeypatch.setattr(MadryAT, "loss", recording_loss)
    return calls, outputs, used


def test_agent_old_gradient_reuses_the_batch_adversarial_examples(monkeypatch, tmp_path):
    calls, outputs, used = _count_attacks(monkeypatch)
    result = _run(AGENT_AT, tmp_path)
    assert result.status == "completed"
    steps = 2
    assert len(calls) == steps  # one attack per training step, none in the clean full-gradient pass
    assert len(used) == 2 * steps  # the training loss and the old gradient at the snapshot
    for x_adv in used:
        assert any(x_adv is out for out in outputs)
    assert used[0] is used[1] is outputs[0] and used[2] is used[3] is outputs[1]
    # fwd_bwd: training (1 + attack_steps) + clean full pass + one snapshot gradient per example
    assert result.history["fwd_bwd"].tolist() == [128 * (1 + 1) + 128 + 128]


def test_agent_adversarial_full_gradient_pass_attacks(monkeypatch, tmp_path):
    calls, _, _ = _count_attacks(monkeypatch)
    result = _run(AGENT_AT.replace(full_grad_objective="adversarial"), tmp_path)
    assert result.status == "completed"
    steps, full_pass_batches = 2, 2
    assert len(calls) == steps + full_pass_batches


def test_agent_adversarial_full_gradient_pass_survives_a_second_refresh(tmp_path):
    result = _run(AGENT_AT.replace(full_grad_objective="adversarial", epochs=2), tmp_path)
    assert result.status == "completed"


def test_agent_adversarial_full_pass_attacks_both_snapshots_from_the_same_start(monkeypatch, tmp_path):
    calls = []

    def recording_perturb(self, model, x, y, *, generator=None, rows=None):
        calls.append((x, generator.initial_seed()))
        return x.clone()  # records the seeding only

    monkeypatch.setattr(PGD, "perturb", recording_perturb)
    result = _run(AGENT_AT.replace(full_grad_objective="adversarial", epochs=2), tmp_path)
    assert result.status == "completed"
    # epoch 1: full pass (2 batches), 2 steps; epoch 2: the first step's attack, then the full pass
    # (each batch at θ, then at θ̃), then the second step's attack
    assert len(calls) == 2 + 2 + 1 + 2 * 2 + 1
    second_refresh = calls[5:9]
    for (x_cur, seed_cur), (x_old, seed_old) in zip(second_refresh[::2], second_refresh[1::2]):
        assert x_cur is x_old
        assert seed_cur == seed_old


# --------------------------------------------------------------------------------------------
# 11. Config validation
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, match", [
    ({"adversarial": "pgd"}, r"RunConfig\.adversarial.*valid choices: none, at, trades"),
    ({"adversarial": "at", "trades_beta": 1.0}, r"RunConfig\.trades_beta"),
    ({"trades_beta": 3.0}, r"RunConfig\.trades_beta"),
    ({"adversarial": "trades", "trades_beta": -1.0}, r"RunConfig\.trades_beta"),
    ({"adversarial": "at", "optimizer": "agent", "full_grad_objective": "sometimes"},
     r"RunConfig\.full_grad_objective.*valid choices: clean, adversarial"),
    ({"adversarial": "at", "full_grad_objective": "adversarial"}, r"RunConfig\.full_grad_objective"),
    ({"optimizer": "agent", "full_grad_objective": "adversarial"}, r"RunConfig\.full_grad_objective"),
    ({"adversarial": "at", "robust_eval": "pgd7"}, r"RunConfig\.robust_eval.*valid choices"),
    ({"adversarial": "at", "epsilon": 1.5}, r"RunConfig\.epsilon"),
    ({"adversarial": "at", "epsilon": -0.1}, r"RunConfig\.epsilon"),
    ({"adversarial": "at", "attack_steps": -1}, r"RunConfig\.attack_steps"),
    ({"adversarial": "at", "attack_bn": "frozen"}, r"RunConfig\.attack_bn.*valid choices: eval, train"),
    ({"adversarial": "at", "robust_eval_restarts": 0}, r"RunConfig\.robust_eval_restarts"),
    ({"adversarial": "at", "robust_eval_subset": 0}, r"RunConfig\.robust_eval_subset"),
])
def test_adversarial_config_validation(changes, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig(dataset="synthetic", **changes)


def test_valid_adversarial_configs_are_accepted():
    RunConfig(dataset="synthetic", adversarial="trades", trades_beta=0.0)
    RunConfig(dataset="synthetic", adversarial="at", optimizer="agent", full_grad_objective="adversarial")
    RunConfig(dataset="synthetic", adversarial="at", epsilon=0.0, robust_eval="pgd50", robust_eval_subset=None)


# --------------------------------------------------------------------------------------------
# 12. Resume
# --------------------------------------------------------------------------------------------

def test_interrupted_adversarial_run_resumes_exactly(run_store, tmp_path):
    config = MINI.replace(adversarial="at")
    straight = _run(config, run_store)  # shared with the loop test above
    stopped = train(config, out=tmp_path, progress=False, stop_after_epoch=1)
    assert stopped.status == "interrupted" and len(stopped.history) == 1
    resumed = _run(config, tmp_path)
    assert resumed.status == "completed"
    pd.testing.assert_frame_equal(resumed.history.drop(columns=WALL_CLOCK),
                                  straight.history.drop(columns=WALL_CLOCK), check_exact=True)
    a, b = straight.load_model(), resumed.load_model()
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), name


def test_trainer_counts_the_objective_passes():
    model = _cnn()
    x, y = _images(32)

    class Loader:
        def __len__(self):
            return 2

        def epoch(self, epoch):
            return iter([(x[:16], y[:16]), (x[16:], y[16:])])

    config = RunConfig(dataset="synthetic", epochs=1, lr=0.01, device="cpu", adversarial="trades", attack_steps=2)
    trainer = Trainer(config, model, Loader(), Loader(), torch.device("cpu"), objective=build_objective(config))
    trainer.train_epoch()
    assert trainer.state.fwd_bwd == 32 * (2 + 2 + 1)
    assert trainer.state.step == 2
