"""AGENT gradient corrector: exactness against an independent Algorithm 1, ĉ*, unbiasedness,
variance reduction, isolation of auxiliary passes, sparse masking, resume, argument checks."""
from __future__ import annotations

import copy
import io
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from agent_lab.optim.agent import COEFFICIENT_RULES, GradientCorrector, capture_rng_state

GAMMA, ALPHA, C0, FIXED_C, LR = 0.5, 0.3, 0.4, 0.2, 0.2


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def ce_loss(model, x, y):
    return F.cross_entropy(model(x), y)


def mse_loss(model, x, y):
    return F.mse_loss(model(x).squeeze(-1), y)


def make_data(sizes=(8, 8, 8, 4), dim=5, classes=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    x = torch.randn(n, dim, generator=g, dtype=dtype)
    y = torch.randint(0, classes, (n,), generator=g)
    batches, start = [], 0
    for s in sizes:
        batches.append((x[start:start + s], y[start:start + s]))
        start += s
    return x, y, batches


def make_mlp(seed=1, dim=5, hidden=7, classes=3, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, classes)).to(dtype)


def train_epoch(model, corrector, optimizer, batches, loss_fn):
    for x, y in batches:
        optimizer.zero_grad()
        loss_fn(model, x, y).backward()
        corrector.correct_(x, y, loss_fn)
        optimizer.step()


# ------------------------------------------------------------------ independent Algorithm 1

def ref_loss(theta, x, y):
    h = torch.tanh(x @ theta["0.weight"].T + theta["0.bias"])
    return F.cross_entropy(h @ theta["2.weight"].T + theta["2.bias"], y)


ref_grad = torch.func.grad(ref_loss)


def reference_algorithm1(theta0, batches, rule, epochs):
    """Algorithm 1 written step by step on a dict of float64 tensors, refresh every epoch."""
    theta = {k: v.clone() for k, v in theta0.items()}
    snap, g_tilde, c_hat, refreshes = None, None, C0, 0
    c_seq, c_star_seq = [], []
    n_total = sum(len(y) for _, y in batches)
    for _ in range(epochs):
        c_star = math.nan
        if snap is not None:
            cur = np.array([ref_loss(theta, x, y).item() for x, y in batches])
            old = np.array([ref_loss(snap, x, y).item() for x, y in batches])
            c_star = np.cov(cur, old)[0, 1] / np.var(old, ddof=1)
            c_hat = (1 - ALPHA) * c_hat + ALPHA * c_star
        snap = {k: v.clone() for k, v in theta.items()}
        per_batch = [ref_grad(theta, x, y) for x, y in batches]
        g_tilde = {k: sum(len(y) * g[k] for (_, y), g in zip(batches, per_batch)) / n_total for k in theta}
        refreshes += 1
        c = {"agent": GAMMA * c_hat, "svrg": 1.0, "fixed-c": FIXED_C, "no-gamma": c_hat,
             "ramp": GAMMA * (1 - (1 - ALPHA) ** (refreshes - 1))}[rule]
        c_seq.append(c)
        c_star_seq.append(c_star)
        for x, y in batches:
            g_new, g_old = ref_grad(theta, x, y), ref_grad(snap, x, y)
            theta = {k: theta[k] - LR * (g_new[k] - c * g_old[k] + c * g_tilde[k]) for k in theta}
    return theta, c_seq, c_star_seq


@pytest.mark.parametrize("rule", COEFFICIENT_RULES)
def test_trajectory_matches_independent_algorithm1(rule):
    _, _, batches = make_data()
    model = make_mlp()
    theta0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    corrector = GradientCorrector(model, rule=rule, gamma=GAMMA, alpha=ALPHA, c0=C0, fixed_c=FIXED_C)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    c_seq, c_star_seq = [], []
    for _ in range(4):
        info = corrector.refresh(batches, ce_loss)
        c_seq.append(info["c"])
        c_star_seq.append(info["c_hat_star"])
        train_epoch(model, corrector, optimizer, batches, ce_loss)
    theta_ref, c_ref, c_star_ref = reference_algorithm1(theta0, batches, rule, 4)

    for name, p in model.named_parameters():
        assert torch.allclose(p.detach(), theta_ref[name], rtol=0, atol=1e-10), name
    assert np.allclose(c_seq, c_ref, rtol=1e-10, atol=1e-12)
    assert math.isnan(c_star_seq[0]) and math.isnan(c_star_ref[0])
    assert np.allclose(c_star_seq[1:], c_star_ref[1:], rtol=1e-10, atol=1e-12)
    if rule == "ramp":  # the A-BSR-Net schedule: c = 0 until the second refresh
        assert c_seq[0] == 0.0
        assert c_seq[1:] == pytest.approx([GAMMA * (1 - (1 - ALPHA) ** e) for e in (1, 2, 3)], abs=1e-15)


def test_refresh_counts_and_full_gradient_weighted_by_batch_size():
    x, y, batches = make_data(sizes=(8, 8, 8, 4))
    model = make_mlp()
    corrector = GradientCorrector(model)
    info = corrector.refresh(batches, ce_loss)
    assert info["examples"] == 28 and info["fwd_bwd"] == 28 and math.isnan(info["c_hat_star"])
    full = torch.autograd.grad(ce_loss(model, x, y), list(model.parameters()))
    for (name, p), g in zip(model.named_parameters(), full):
        assert torch.allclose(corrector.per_element_state()[name][1], g, atol=1e-12)
        assert p.grad is None  # the live .grad is never touched
    info = corrector.refresh(batches, ce_loss)
    assert info["fwd_bwd"] == 56 and corrector.refreshes == 2


# ------------------------------------------------------------------ ĉ* and the c sequence

def test_c_hat_star_is_loss_regression_and_ema_gives_c_exactly():
    _, _, batches = make_data(sizes=(6,) * 6)
    model = make_mlp()
    corrector = GradientCorrector(model, rule="agent", gamma=GAMMA, alpha=ALPHA, c0=C0)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    previous = None
    c_hat, stars, cs = C0, [], []
    for epoch in range(4):
        with torch.no_grad():
            cur = np.array([ce_loss(model, x, y).item() for x, y in batches])
            old = None if previous is None else np.array([ce_loss(previous, x, y).item() for x, y in batches])
        info = corrector.refresh(batches, ce_loss)
        if old is None:
            assert math.isnan(info["c_hat_star"]) and info["c_hat"] == C0
        else:
            expected = np.cov(cur, old)[0, 1] / np.var(old, ddof=1)
            assert info["c_hat_star"] == pytest.approx(expected, rel=1e-12)
            assert abs(info["c_hat_star"] - 1.0) > 1e-3  # a real estimate, not the A-BSR-Net constant
            c_hat = (1 - ALPHA) * c_hat + ALPHA * info["c_hat_star"]
        stars.append(info["c_hat_star"])
        cs.append(info["c"])
        assert info["c_hat"] == c_hat and corrector.c_hat == c_hat  # exact
        assert info["c"] == GAMMA * c_hat and corrector.c == info["c"]  # exact
        assert np.array_equal([corrector.c_hat_star], [info["c_hat_star"]], equal_nan=True)
        previous = copy.deepcopy(model)
        train_epoch(model, corrector, optimizer, batches, ce_loss)
    assert len(set(cs)) == 4


def test_c_hat_star_undefined_keeps_c_hat():
    _, _, batches = make_data(sizes=(8,))
    corrector = GradientCorrector(make_mlp(), c0=0.25)
    corrector.refresh(batches, ce_loss)
    info = corrector.refresh(batches, ce_loss)  # one batch: no sample variance
    assert math.isnan(info["c_hat_star"]) and info["c_hat"] == 0.25

    const = nn.Linear(3, 1)

    def constant_loss(model, x, y):
        return model.weight.sum() * 0 + 1.0  # identical losses everywhere: Var(L_old) = 0

    corrector = GradientCorrector(const, c0=0.25)
    batches = [(torch.zeros(2, 3), torch.zeros(2))] * 3
    corrector.refresh(batches, constant_loss)
    assert math.isnan(corrector.refresh(batches, constant_loss)["c_hat_star"]) and corrector.c_hat == 0.25


def test_no_correction_before_first_refresh_or_when_c_is_zero():
    _, _, batches = make_data()
    model = make_mlp()
    corrector = GradientCorrector(model, rule="agent")
    x, y = batches[0]
    ce_loss(model, x, y).backward()
    before = [p.grad.clone() for p in model.parameters()]
    assert corrector.c == 0.0 and corrector.correct_(x, y, ce_loss) == 0
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), before))

    calls = []

    def counting_loss(m, xx, yy):
        calls.append(m)
        return ce_loss(m, xx, yy)

    zero = GradientCorrector(model, rule="fixed-c", fixed_c=0.0)
    zero.refresh(batches, ce_loss)
    assert zero.correct_(x, y, counting_loss) == 0 and not calls
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), before))
    ramp = GradientCorrector(model, rule="ramp")
    ramp.refresh(batches, ce_loss)
    assert ramp.c == 0.0 and ramp.correct_(x, y, counting_loss) == 0 and not calls
    agent = GradientCorrector(model, rule="agent")
    agent.refresh(batches, ce_loss)
    assert agent.correct_(x, y, counting_loss) == len(x) and calls == [agent.snapshot_model]


# ------------------------------------------------------------------ unbiasedness, variance

def test_svrg_corrected_gradient_is_unbiased():
    x, y, batches = make_data(sizes=(7,) * 5)
    model = make_mlp()
    corrector = GradientCorrector(model, rule="svrg")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    corrector.refresh(batches, ce_loss)
    for xb, yb in batches[:3]:  # move θ away from θ̃
        optimizer.zero_grad()
        ce_loss(model, xb, yb).backward()
        optimizer.step()
    corrected = []
    for xb, yb in batches:
        optimizer.zero_grad()
        ce_loss(model, xb, yb).backward()
        corrector.correct_(xb, yb, ce_loss)
        corrected.append([p.grad.clone() for p in model.parameters()])
    full = torch.autograd.grad(ce_loss(model, x, y), list(model.parameters()))
    for k, g in enumerate(full):
        mean = torch.stack([c[k] for c in corrected]).mean(0)
        assert torch.allclose(mean, g, rtol=0, atol=1e-10)
        assert not torch.allclose(corrected[0][k], g, atol=1e-6)  # each one is still noisy


def test_agent_reduces_gradient_variance_on_least_squares():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(256, 10, generator=g, dtype=torch.float64)
    y = x @ torch.randn(10, generator=g, dtype=torch.float64) + 0.5 * torch.randn(256, generator=g,
                                                                                  dtype=torch.float64)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 256, 16)]

    def measure(rule, correct=True):
        # The same θ̃ (two refreshes: ĉ* estimated between them) and the same θ for every rule:
        # the steps in between are plain SGD; then ĝ on every batch at that fixed θ.
        torch.manual_seed(0)
        model = nn.Linear(10, 1, bias=False).double()
        corrector = GradientCorrector(model, rule=rule, gamma=0.1, alpha=0.3, c0=1.0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
        for _ in range(2):
            corrector.refresh(batches, mse_loss)
            for xb, yb in batches[:3]:
                optimizer.zero_grad()
                mse_loss(model, xb, yb).backward()
                optimizer.step()
        grads = []
        for xb, yb in batches:
            optimizer.zero_grad()
            mse_loss(model, xb, yb).backward()
            if correct:
                corrector.correct_(xb, yb, mse_loss)
            grads.append(model.weight.grad.flatten().clone())
        grads = torch.stack(grads)
        return ((grads - grads.mean(0)) ** 2).sum(1).mean().item(), corrector

    sgd, _ = measure("agent", correct=False)
    agent, corrector = measure("agent")
    svrg, _ = measure("svrg")
    assert corrector.c_hat_star > 0.5 and corrector.c > 0.05  # correlated losses, real correction
    assert agent < 0.9 * sgd, (agent, sgd)
    assert svrg < agent


# ------------------------------------------------------------------ isolation (BN, modes, RNG)

def make_bn_net(dtype=torch.float32, dropout=0.3):
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(8, 3)).to(dtype)


def bn_batches(dtype=torch.float32):
    g = torch.Generator().manual_seed(4)
    return [(torch.randn(10, 6, generator=g, dtype=dtype), torch.randint(0, 3, (10,), generator=g))
            for _ in range(4)]


def global_state(model):
    return {
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
        "modes": [m.training for m in model.modules()],
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
    }


def assert_same_state(before, model):
    after = global_state(model)
    for n, b in before["buffers"].items():
        assert torch.equal(after["buffers"][n], b), n
    assert after["modes"] == before["modes"]
    assert torch.equal(after["torch"], before["torch"])
    np_before, np_after = before["numpy"], after["numpy"]
    assert np_before[0] == np_after[0] and np.array_equal(np_before[1], np_after[1])
    assert tuple(np_before[2:]) == tuple(np_after[2:])
    assert after["python"] == before["python"]


def test_auxiliary_passes_leave_bn_stats_modes_and_rng_untouched():
    model = make_bn_net()
    batches = bn_batches()
    model[1].running_mean.add_(0.3)  # non-trivial running stats
    corrector = GradientCorrector(model, rule="agent", c0=1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(11), np.random.seed(11), random.seed(11)
    for mixed in (False, True):
        model.train()
        if mixed:
            model[1].eval()  # a frozen-BN configuration must survive too
        before = global_state(model)
        corrector.refresh(batches, ce_loss)
        assert_same_state(before, model)
        snap_buffers = {n: b.clone() for n, b in corrector.snapshot_model.named_buffers()}
        for n, b in model.named_buffers():
            assert torch.equal(snap_buffers[n], b)  # θ̃ carries the BN buffers of θ
        for x, y in batches:
            optimizer.zero_grad()
            ce_loss(model, x, y).backward()
            before = global_state(model)
            assert corrector.correct_(x, y, ce_loss) == len(x)
            assert_same_state(before, model)
            for n, b in corrector.snapshot_model.named_buffers():
                assert torch.equal(b, snap_buffers[n])  # snapshot stats stay those of θ̃
            optimizer.step()
    model.eval()
    before = global_state(model)
    corrector.refresh(batches, ce_loss)
    assert_same_state(before, model)
    assert not model.training and corrector.refreshes == 3


def test_refresh_does_not_touch_live_gradients():
    model = make_bn_net()
    batches = bn_batches()
    ce_loss(model, *batches[0]).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    objects = [p.grad for p in model.parameters()]
    corrector = GradientCorrector(model)
    corrector.refresh(batches, ce_loss)
    corrector.refresh(batches, ce_loss)
    for p, g, o in zip(model.parameters(), grads, objects):
        assert p.grad is o and torch.equal(p.grad, g)


def test_snapshot_pass_replays_training_randomness_with_rng_state():
    # Right after a refresh θ̃ = θ: with the training pass's RNG state (same dropout masks, same BN
    # batch statistics) g_old = g exactly, so the SVRG-corrected gradient is exactly g̃.
    model = make_bn_net(torch.float64, dropout=0.5)
    batches = bn_batches(torch.float64)
    corrector = GradientCorrector(model, rule="svrg")
    corrector.refresh(batches, ce_loss)
    g_tilde = [t[1].clone() for t in corrector.per_element_state().values()]
    x, y = batches[1]
    state = capture_rng_state()
    ce_loss(model, x, y).backward()
    corrector.correct_(x, y, ce_loss, rng_state=state)
    for p, g in zip(model.parameters(), g_tilde):
        assert torch.allclose(p.grad, g, rtol=0, atol=1e-12)
    after = torch.get_rng_state()
    model.zero_grad()
    ce_loss(model, x, y).backward()
    corrector.correct_(x, y, ce_loss)  # other dropout masks: no longer exact
    assert not all(torch.allclose(p.grad, g, atol=1e-9) for p, g in zip(model.parameters(), g_tilde))
    assert not torch.equal(after, torch.get_rng_state())  # only the training forward moved the RNG


def test_snapshot_runs_in_the_live_models_current_mode():
    # θ̃ = θ right after a refresh. In eval mode (no dropout, running stats) g_old = g, so the SVRG
    # gradient is exactly g̃ even though the snapshot was taken while training.
    model = make_bn_net(torch.float64, dropout=0.5)
    batches = bn_batches(torch.float64)
    corrector = GradientCorrector(model, rule="svrg")
    corrector.refresh(batches, ce_loss)  # snapshot copied in train mode
    model.eval()
    corrector.refresh(batches, ce_loss)  # g̃ in eval mode
    g_tilde = [t[1].clone() for t in corrector.per_element_state().values()]
    x, y = batches[2]
    ce_loss(model, x, y).backward()
    corrector.correct_(x, y, ce_loss)
    for p, g in zip(model.parameters(), g_tilde):
        assert torch.allclose(p.grad, g, rtol=0, atol=1e-12)


def test_c_hat_star_is_one_when_snapshot_equals_current_even_with_dropout():
    # Two refreshes with no step between: L_cur = L_old batch by batch (the snapshot's forward
    # replays the live forward's dropout masks), so ĉ* = 1 -- the A-BSR-Net constant.
    model = make_bn_net(torch.float64, dropout=0.5)
    batches = bn_batches(torch.float64)
    corrector = GradientCorrector(model)
    corrector.refresh(batches, ce_loss)
    assert corrector.refresh(batches, ce_loss)["c_hat_star"] == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------ sparse masking

def test_mask_state_zeroes_full_gradient_and_stops_correction_there():
    _, _, batches = make_data()
    model = make_mlp()
    corrector = GradientCorrector(model, rule="svrg")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    corrector.refresh(batches, ce_loss)
    train_epoch(model, corrector, optimizer, batches[:2], ce_loss)  # θ ≠ θ̃
    keep = torch.rand(model[0].weight.shape, generator=torch.Generator().manual_seed(0)) > 0.5
    corrector.mask_state_("0.weight", keep)
    g_tilde = corrector.per_element_state()["0.weight"][1]
    assert torch.all(g_tilde[~keep] == 0) and torch.all(g_tilde[keep] != 0)

    x, y = batches[2]
    optimizer.zero_grad()
    ce_loss(model, x, y).backward()
    plain = model[0].weight.grad.clone()
    plain_bias = model[0].bias.grad.clone()
    corrector.correct_(x, y, ce_loss)
    corrected = model[0].weight.grad
    assert torch.equal(corrected[~keep], plain[~keep])  # no correction where masked
    assert not torch.allclose(corrected[keep], plain[keep])
    assert not torch.allclose(model[0].bias.grad, plain_bias)  # other parameters still corrected

    # Growing a position back does not make it correctable before the next refresh.
    corrector.mask_state_("0.weight", torch.ones_like(keep))
    optimizer.zero_grad()
    ce_loss(model, x, y).backward()
    plain = model[0].weight.grad.clone()
    corrector.correct_(x, y, ce_loss)
    assert torch.equal(model[0].weight.grad[~keep], plain[~keep])

    # At a refresh the latest mask given is applied again: all True now, so everything is corrected.
    corrector.refresh(batches, ce_loss)
    assert torch.all(corrector.per_element_state()["0.weight"][1] != 0)
    corrector.mask_state_("0.weight", keep)
    corrector.refresh(batches, ce_loss)  # still masked after the refresh
    assert torch.all(corrector.per_element_state()["0.weight"][1][~keep] == 0)

    with pytest.raises(ValueError, match="name"):
        corrector.mask_state_("nope", keep)
    with pytest.raises(ValueError, match="shape"):
        corrector.mask_state_("0.weight", keep[:, :2])


def test_mask_given_before_first_refresh_applies_at_refresh():
    _, _, batches = make_data()
    model = make_mlp()
    corrector = GradientCorrector(model, rule="svrg")
    keep = torch.zeros_like(model[2].weight, dtype=torch.bool)
    keep[0] = True
    corrector.mask_state_("2.weight", keep)
    assert corrector.per_element_state() == {}
    corrector.refresh(batches, ce_loss)
    g_tilde = corrector.per_element_state()["2.weight"][1]
    assert torch.all(g_tilde[1:] == 0) and torch.all(g_tilde[0] != 0)


# ------------------------------------------------------------------ resume

def test_state_dict_round_trip_reproduces_the_trajectory():
    model = make_bn_net(torch.float64, dropout=0.0)
    batches = bn_batches(torch.float64)
    keep = torch.rand(model[0].weight.shape, generator=torch.Generator().manual_seed(2)) > 0.3

    def build(m):
        return (GradientCorrector(m, rule="agent", gamma=0.5, c0=0.3),
                torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9))

    def continue_training(m, corrector, optimizer):
        train_epoch(m, corrector, optimizer, batches[2:], ce_loss)
        cs = []
        for _ in range(2):
            cs.append(corrector.refresh(batches, ce_loss)["c"])
            train_epoch(m, corrector, optimizer, batches, ce_loss)
        return cs

    corrector, optimizer = build(model)
    corrector.refresh(batches, ce_loss)
    train_epoch(model, corrector, optimizer, batches, ce_loss)
    corrector.refresh(batches, ce_loss)
    train_epoch(model, corrector, optimizer, batches[:2], ce_loss)  # stop mid-epoch
    corrector.mask_state_("0.weight", keep)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "corrector": corrector.state_dict()}, buffer)
    cs_a = continue_training(model, corrector, optimizer)

    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    model_b = make_bn_net(torch.float64, dropout=0.0)
    model_b.load_state_dict(checkpoint["model"])
    corrector_b, optimizer_b = build(model_b)
    optimizer_b.load_state_dict(checkpoint["optimizer"])
    corrector_b.load_state_dict(checkpoint["corrector"])
    cs_b = continue_training(model_b, corrector_b, optimizer_b)

    assert cs_a == cs_b
    for (name, a), b in zip(model.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(a, b), name
    sa, sb = corrector.state_dict(), corrector_b.state_dict()
    assert sa["c_hat"] == sb["c_hat"] and sa["refreshes"] == sb["refreshes"] == 4
    for n in sa["full_grad"]:
        assert torch.equal(sa["full_grad"][n], sb["full_grad"][n])
        assert torch.equal(sa["correctable"][n], sb["correctable"][n])


def test_state_dict_before_first_refresh_round_trips():
    model = make_mlp()
    corrector = GradientCorrector(model)
    other = GradientCorrector(make_mlp())
    other.refresh(make_data()[2], ce_loss)
    other.load_state_dict(corrector.state_dict())
    assert other.snapshot_model is None and other.refreshes == 0 and other.c == 0.0


# ------------------------------------------------------------------ arguments

@pytest.mark.parametrize("kwargs, name", [
    ({"rule": "sgd"}, "rule"), ({"rule": None}, "rule"),
    ({"gamma": -0.1}, "gamma"), ({"gamma": 1.5}, "gamma"), ({"gamma": float("nan")}, "gamma"),
    ({"gamma": "0.1"}, "gamma"),
    ({"alpha": 0.0}, "alpha"), ({"alpha": 1.01}, "alpha"), ({"alpha": True}, "alpha"),
    ({"c0": float("inf")}, "c0"), ({"c0": None}, "c0"),
    ({"fixed_c": -0.5}, "fixed_c"), ({"fixed_c": 2.0}, "fixed_c"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name) as error:
        GradientCorrector(make_mlp(), **kwargs)
    message = str(error.value)
    if name == "rule":
        assert all(rule in message for rule in COEFFICIENT_RULES)


def test_other_bad_inputs():
    with pytest.raises(TypeError, match="model"):
        GradientCorrector("not a model")
    model = make_mlp()
    with pytest.raises(ValueError, match="parameter"):
        GradientCorrector(model.requires_grad_(False))
    corrector = GradientCorrector(make_mlp())
    with pytest.raises(ValueError, match="empty"):
        corrector.refresh([], ce_loss)
    with pytest.raises(ValueError, match="scalar"):
        corrector.refresh(make_data()[2], lambda m, x, y: F.cross_entropy(m(x), y, reduction="none"))
    assert corrector.refreshes == 0 and corrector.snapshot_model is None
