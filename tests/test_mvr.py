"""MVR / STORM: trajectories against hand computations, AGENT+MVR's one-pass saving, isolation, state."""
from __future__ import annotations

import copy
import io
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from agent_lab.optim.agent import GradientCorrector, capture_rng_state
from agent_lab.optim.mvr import MVR
from agent_lab.sparse import Sparsifier


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _batches(steps: int, n: int = 5, d_in: int = 4, d_out: int = 3, seed: int = 0, classes: bool = False):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        x = torch.randn(n, d_in, generator=gen, dtype=torch.float64)
        y = (torch.randint(0, d_out, (n,), generator=gen) if classes
             else torch.randn(n, d_out, generator=gen, dtype=torch.float64))
        out.append((x, y))
    return out


def squared_loss(model, x, y):
    return 0.5 * (model(x) - y).square().sum(1).mean()


def ce_loss(model, x, y):
    return F.cross_entropy(model(x), y)


def _linear() -> nn.Linear:
    torch.manual_seed(1)
    return nn.Linear(4, 3).double()


def _hand_grad(W, b, x, y):
    """∇ of 0.5·mean_i ‖W x_i + b − y_i‖² in closed form."""
    r = x @ W.T + b - y
    return r.T @ x / x.shape[0], r.mean(0)


def _bn_mlp() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3)).double()


# --- constant a --------------------------------------------------------------------------------

def test_constant_a_trajectory_matches_hand_computation():
    a, lr, steps, n = 0.3, 0.2, 7, 5
    model = _linear()
    W, b = model.weight.detach().clone(), model.bias.detach().clone()
    mvr = MVR(model, a=a)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    d = prev = None
    for t, (x, y) in enumerate(_batches(steps, n)):
        opt.zero_grad()
        squared_loss(model, x, y).backward()
        passes = mvr.transform_(x, y, squared_loss)
        assert passes == (0 if t == 0 else n)
        g = _hand_grad(W, b, x, y)
        if d is None:
            d = g
        else:
            g_prev = _hand_grad(*prev, x, y)
            d = tuple(gi + (1 - a) * (di - gpi) for gi, di, gpi in zip(g, d, g_prev))
        torch.testing.assert_close(model.weight.grad, d[0], rtol=0, atol=1e-10)
        torch.testing.assert_close(model.bias.grad, d[1], rtol=0, atol=1e-10)
        opt.step()
        prev = (W, b)
        W, b = W - lr * d[0], b - lr * d[1]
        torch.testing.assert_close(model.weight.detach(), W, rtol=0, atol=1e-10)
        torch.testing.assert_close(model.bias.detach(), b, rtol=0, atol=1e-10)
    assert mvr.lr is None and mvr.a == a and mvr.step == steps


def test_a_equal_one_is_sgd():
    model, ref = _linear(), _linear()
    mvr = MVR(model, a=1.0)
    opt, opt_ref = torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(ref.parameters(), lr=0.1)
    for x, y in _batches(4):
        for m, o in ((model, opt), (ref, opt_ref)):
            o.zero_grad()
            squared_loss(m, x, y).backward()
        mvr.transform_(x, y, squared_loss)
        opt.step()
        opt_ref.step()
    torch.testing.assert_close(model.weight, ref.weight, rtol=0, atol=1e-12)


# --- adaptive (STORM) ----------------------------------------------------------------------------

@pytest.mark.parametrize("c", [100.0, 1e6])
def test_adaptive_schedule_and_trajectory(c):
    k, w, steps = 0.1, 0.1, 7
    model = _linear()
    W, b = model.weight.detach().clone(), model.bias.detach().clone()
    mvr = MVR(model, adaptive=True, k=k, w=w, c=c, a=0.5)  # a is ignored in adaptive mode
    opt = torch.optim.SGD(model.parameters(), lr=123.0)  # overwritten from mvr.lr every step
    d = prev = None
    sum_sq, a_t = 0.0, None
    seen_a = []
    for x, y in _batches(steps, seed=4):
        opt.zero_grad()
        squared_loss(model, x, y).backward()
        mvr.transform_(x, y, squared_loss)
        g = _hand_grad(W, b, x, y)
        if d is None:
            d = g
        else:
            g_prev = _hand_grad(*prev, x, y)
            d = tuple(gi + (1 - a_t) * (di - gpi) for gi, di, gpi in zip(g, d, g_prev))
        sum_sq += float(g[0].square().sum() + g[1].square().sum())
        eta = k / (w + sum_sq) ** (1 / 3)
        a_t = min(1.0, c * eta ** 2)
        seen_a.append(a_t)
        assert mvr.lr == pytest.approx(eta, rel=1e-12)
        assert mvr.a == pytest.approx(a_t, rel=1e-12)
        torch.testing.assert_close(model.weight.grad, d[0], rtol=0, atol=1e-10)
        for group in opt.param_groups:
            group["lr"] = mvr.lr
        opt.step()
        prev = (W, b)
        W, b = W - eta * d[0], b - eta * d[1]
        torch.testing.assert_close(model.weight.detach(), W, rtol=0, atol=1e-10)
    if c == 1e6:
        assert all(v == 1.0 for v in seen_a)  # clipped: STORM degenerates to SGD with η_t
    else:
        assert all(v < 1.0 for v in seen_a)


# --- AGENT + MVR: the cancellation --------------------------------------------------------------

class StubCorrector:
    """Minimal corrector with GradientCorrector's correct_ contract: p.grad += c·(g̃ − g(θ̃; x, y))."""

    def __init__(self, model: nn.Module, c: float, seed: int = 7) -> None:
        self.model, self.c = model, c
        self.snapshot = copy.deepcopy(model)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.snapshot.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        self.g_tilde = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in model.parameters()]
        self.calls = 0

    def correct_(self, x, y, loss_fn, *, rng_state=None) -> int:
        self.calls += 1
        snap = list(self.snapshot.parameters())
        old = torch.autograd.grad(loss_fn(self.snapshot, x, y), snap)
        with torch.no_grad():
            for p, gt, go in zip(self.model.parameters(), self.g_tilde, old):
                p.grad.add_(gt - go, alpha=self.c)
        return x.shape[0]


def _naive_agent_mvr(model, corrector, batches, loss_fn, a, lr, refresh=None):
    """d_t = ĝ(θ_t) + (1−a)(d_{t−1} − ĝ(θ_{t−1})) with both ĝ computed in full (two snapshot passes)."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    params = dict(model.named_parameters())
    d, prev, passes, trajectory = None, None, 0, []
    for t, (x, y) in enumerate(batches):
        if refresh is not None:
            refresh(t, corrector)
        opt.zero_grad()
        loss_fn(model, x, y).backward()
        passes += x.shape[0]
        passes += corrector.correct_(x, y, loss_fn)
        g_hat = {n: p.grad.detach().clone() for n, p in params.items()}
        current = copy.deepcopy(model.state_dict())
        if d is None:
            d = g_hat
        else:
            model.load_state_dict(prev)
            opt.zero_grad()
            loss_fn(model, x, y).backward()
            passes += x.shape[0]
            passes += corrector.correct_(x, y, loss_fn)
            g_hat_prev = {n: p.grad.detach().clone() for n, p in params.items()}
            model.load_state_dict(current)  # parameters and BN buffers back to θ_t
            d = {n: g_hat[n] + (1 - a) * (d[n] - g_hat_prev[n]) for n in params}
        prev = current
        with torch.no_grad():
            for n, p in params.items():
                p.grad.copy_(d[n])
        opt.step()
        trajectory.append({n: p.detach().clone() for n, p in params.items()})
    return trajectory, passes


def _mvr_run(model, corrector, batches, loss_fn, a, lr, refresh=None):
    mvr = MVR(model, a=a, corrector=corrector)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    passes, trajectory = 0, []
    for t, (x, y) in enumerate(batches):
        if refresh is not None:
            refresh(t, corrector)
        opt.zero_grad()
        loss_fn(model, x, y).backward()
        passes += x.shape[0]
        passes += mvr.transform_(x, y, loss_fn)
        opt.step()
        trajectory.append({n: p.detach().clone() for n, p in model.named_parameters()})
    return trajectory, passes


def _assert_same_trajectory(one, two, atol):
    assert len(one) == len(two)
    for a, b in zip(one, two):
        for n in a:
            torch.testing.assert_close(a[n], b[n], rtol=0, atol=atol)


def test_agent_mvr_equals_naive_two_snapshot_passes_stub_corrector():
    a, lr, steps, n = 0.25, 0.1, 8, 5
    batches = _batches(steps, n, classes=True)
    naive_model, fused_model = _bn_mlp(), _bn_mlp()
    naive_corr, fused_corr = StubCorrector(naive_model, c=0.4), StubCorrector(fused_model, c=0.4)

    def change_c(t, corrector):  # a "refresh" between steps changes c; the identity must still hold
        if t == 4:
            corrector.c = 0.9

    naive, naive_passes = _naive_agent_mvr(naive_model, naive_corr, batches, ce_loss, a, lr, change_c)
    fused, fused_passes = _mvr_run(fused_model, fused_corr, batches, ce_loss, a, lr, change_c)
    _assert_same_trajectory(naive, fused, 1e-10)
    # naive: 4 passes per step after the first (live, prev, 2 snapshot); MVR: 3 (one snapshot pass fewer)
    assert naive_passes == 2 * n + (steps - 1) * 4 * n
    assert fused_passes == 2 * n + (steps - 1) * 3 * n
    assert naive_corr.calls == 2 * steps - 1 and fused_corr.calls == steps
    # and the correction matters: plain MVR goes elsewhere
    plain, _ = _mvr_run(_bn_mlp(), None, batches, ce_loss, a, lr)
    assert any(not torch.allclose(p[k], f[k]) for p, f in zip(plain, fused) for k in p)


def test_agent_mvr_equals_naive_with_the_real_corrector():
    a, lr, steps, n = 0.3, 0.1, 8, 6
    batches = _batches(steps, n, classes=True, seed=11)
    full_pass = _batches(4, 10, classes=True, seed=12)

    def refresh(t, corrector):  # refresh at steps 0, 3, 6 (c changes with ĉ* after the first)
        if t % 3 == 0:
            corrector.refresh(full_pass, ce_loss)
            assert corrector.c != 0.0

    runs = []
    for run in (_naive_agent_mvr, _mvr_run):
        model = _bn_mlp()
        corrector = GradientCorrector(model, rule="agent", gamma=0.5, alpha=0.5, c0=0.6)
        runs.append((run(model, corrector, batches, ce_loss, a, lr, refresh), corrector))
    (naive, naive_passes), naive_corr = runs[0]
    (fused, fused_passes), fused_corr = runs[1]
    _assert_same_trajectory(naive, fused, 1e-10)
    assert naive_corr.c == pytest.approx(fused_corr.c, abs=1e-12)
    assert naive_passes - fused_passes == (steps - 1) * n


# --- isolation: buffers, modes, RNG ---------------------------------------------------------------

def _conv_bn_dropout() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, 5), nn.BatchNorm1d(5)).double()


def _module_state(model):
    return ([m.training for m in model.modules()], {n: b.clone() for n, b in model.named_buffers()})


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_transform_leaves_buffers_modes_rng_and_uses_the_live_mode(mode):
    model = _conv_bn_dropout()
    model.train(mode != "eval")
    if mode == "mixed":
        model[1].eval()  # a frozen BN inside a training model
    a = 0.4
    mvr = MVR(model, a=a)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(5)
    x = [torch.rand(6, 3, 6, 6, generator=gen, dtype=torch.float64) for _ in range(3)]
    y = [torch.randint(0, 5, (6,), generator=gen) for _ in range(3)]
    d_prev, theta_prev = None, None
    for t in range(3):
        opt.zero_grad()
        rng = capture_rng_state()
        ce_loss(model, x[t], y[t]).backward()
        g = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        modes, buffers = _module_state(model)
        torch_rng, py_rng, np_rng = torch.get_rng_state(), random.getstate(), np.random.get_state()
        mvr.transform_(x[t], y[t], ce_loss, rng_state=rng)
        assert [m.training for m in model.modules()] == modes
        for n, b in model.named_buffers():
            assert torch.equal(b, buffers[n]), n
        assert torch.equal(torch.get_rng_state(), torch_rng)
        assert random.getstate() == py_rng
        assert np.array_equal(np.random.get_state()[1], np_rng[1])
        if t > 0:
            # reference g(θ_{t−1}): a copy holding θ_{t−1} and its buffers, same modes, same dropout draws
            ref = copy.deepcopy(model)
            ref.load_state_dict(theta_prev)
            saved = torch.get_rng_state()
            torch.set_rng_state(rng["torch"])
            g_old = torch.autograd.grad(ce_loss(ref, x[t], y[t]), list(ref.parameters()))
            torch.set_rng_state(saved)
            for (n, p), go in zip(model.named_parameters(), g_old):
                expected = g[n] + (1 - a) * (d_prev[n] - go)
                torch.testing.assert_close(p.grad, expected, rtol=0, atol=1e-12)
        d_prev = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        theta_prev = copy.deepcopy(model.state_dict())
        opt.step()


# --- sparsity ------------------------------------------------------------------------------------

def test_mask_state_zeroes_d_and_previous_params_and_grown_positions_start_at_zero():
    model = _bn_mlp()
    mvr = MVR(model, a=0.2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = _batches(6, classes=True)
    for x, y in batches[:3]:
        opt.zero_grad()
        ce_loss(model, x, y).backward()
        mvr.transform_(x, y, ce_loss)
        opt.step()
    name = "0.weight"
    gen = torch.Generator().manual_seed(0)
    keep = torch.rand(model[0].weight.shape, generator=gen) < 0.5
    assert bool((mvr.d[name] != 0).all())
    mvr.mask_state_(name, keep)
    assert bool((mvr.d[name][~keep] == 0).all()) and bool((mvr.d[name][keep] != 0).all())
    assert bool((mvr.state_dict()["prev_params"][name][~keep] == 0).all())
    with torch.no_grad():
        model[0].weight.mul_(keep)
    # next steps: d stays zero outside the mask even though the dense gradient is not
    for x, y in batches[3:5]:
        opt.zero_grad()
        ce_loss(model, x, y).backward()
        mvr.transform_(x, y, ce_loss)
        assert bool((mvr.d[name][~keep] == 0).all()) and bool((model[0].weight.grad[~keep] == 0).all())
        opt.step()
        with torch.no_grad():
            model[0].weight.mul_(keep)
    # grow: positions switched on start from d = 0
    grown = ~keep & (torch.rand(keep.shape, generator=gen) < 0.5)
    dropped = keep & (torch.rand(keep.shape, generator=gen) < 0.3)
    new_keep = (keep | grown) & ~dropped
    mvr.mask_state_(name, new_keep)
    assert bool((mvr.d[name][grown] == 0).all()) and bool((mvr.d[name][~new_keep] == 0).all())
    x, y = batches[5]
    opt.zero_grad()
    ce_loss(model, x, y).backward()
    mvr.transform_(x, y, ce_loss)
    assert bool((mvr.d[name][~new_keep] == 0).all()) and bool((mvr.d[name][grown] != 0).any())
    with pytest.raises(ValueError, match="not a trainable parameter"):
        mvr.mask_state_("nope", keep)


def test_follows_a_sparsifier():
    model = _bn_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sparsifier = Sparsifier(model, opt, sparsity=0.5, distribution="uniform", seed=0)
    mvr = MVR(model, a=0.3)
    sparsifier.follow(mvr)
    for x, y in _batches(4, classes=True):
        opt.zero_grad()
        ce_loss(model, x, y).backward()
        mvr.transform_(x, y, ce_loss)
        opt.step()
        for name, p in sparsifier.params.items():
            keep = sparsifier.masks[name]
            assert bool((mvr.d[name][~keep] == 0).all()) and bool((p[~keep] == 0).all())


# --- checkpoints ---------------------------------------------------------------------------------

@pytest.mark.parametrize("adaptive", [False, True])
def test_state_round_trip_reproduces_the_trajectory(adaptive):
    batches = _batches(6, classes=True, seed=9)

    def run(model, mvr, opt, part):
        out = []
        for x, y in part:
            opt.zero_grad()
            ce_loss(model, x, y).backward()
            mvr.transform_(x, y, ce_loss)
            if mvr.lr is not None:
                for group in opt.param_groups:
                    group["lr"] = mvr.lr
            opt.step()
            out.append(copy.deepcopy(model.state_dict()))
        return out

    def fresh():
        model = _bn_mlp()
        return model, MVR(model, a=0.3, adaptive=adaptive), torch.optim.SGD(model.parameters(), lr=0.1)

    model, mvr, opt = fresh()
    straight = run(model, mvr, opt, batches)
    straight_mvr = mvr

    model, mvr, opt = fresh()
    run(model, mvr, opt, batches[:3])
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "mvr": mvr.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model2, mvr2, opt2 = fresh()
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    mvr2.load_state_dict(saved["mvr"])
    resumed = run(model2, mvr2, opt2, batches[3:])
    for a, b in zip(straight[3:], resumed):
        for n in a:
            assert torch.equal(a[n], b[n]), n
    assert mvr2.step == 6 and mvr2.state_dict()["sum_sq"] == straight_mvr.state_dict()["sum_sq"]
    assert mvr2.lr == straight_mvr.lr and (mvr2.lr is None) == (not adaptive)


def test_load_rejects_other_hyper_parameters():
    model = _bn_mlp()
    state = MVR(model, a=0.3).state_dict()
    with pytest.raises(ValueError, match="a=0.3"):
        MVR(model, a=0.5).load_state_dict(state)
