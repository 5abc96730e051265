"""agent_lab.diagnostics: gradient variance, correlation, c*, the variance-vs-c quadratic."""
from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from agent_lab.diagnostics import (CorrelationResult, VarianceCurve, VarianceResult, empirical_variance_of_corrected,
                                   full_gradient, gradient_correlation, gradient_variance,
                                   gradient_variance_brute_force, loss_based_c_star, pearson,
                                   per_sample_gradient_variance, plot_variance_vs_c, snapshot_correlation,
                                   variance_vs_c)
from agent_lab.optim.agent import GradientCorrector
from agent_lab.sparse.masks import MaskState


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


# ------------------------------------------------------------------------------------------------
# Tiny models, batches and hand computations (independent of the package's plumbing)
# ------------------------------------------------------------------------------------------------

class MLP(nn.Module):
    def __init__(self, dropout: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.act = nn.Tanh()
        self.drop = nn.Dropout(0.3) if dropout else nn.Identity()
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.drop(self.act(self.fc1(x))))


class CNN(nn.Module):
    def __init__(self, dropout: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.drop = nn.Dropout(0.3) if dropout else nn.Identity()
        self.fc = nn.Linear(48, 3)

    def forward(self, x):
        return self.fc(self.drop(F.relu(self.bn(self.conv(x)))).flatten(1))


def make_model(kind: str, seed: int = 0, dtype=torch.float64, dropout: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    model = (MLP if kind == "mlp" else CNN)(dropout=dropout)
    return model.to(dtype)


def make_batches(kind: str, k: int = 6, n: int = 5, seed: int = 1, dtype=torch.float64, sizes=None):
    g = torch.Generator().manual_seed(seed)
    shape = (6,) if kind == "mlp" else (2, 4, 4)
    sizes = sizes or [n] * k
    return [(torch.randn((m, *shape), generator=g, dtype=dtype), torch.randint(0, 3, (m,), generator=g))
            for m in sizes]


def ce(model, x, y):
    return F.cross_entropy(model(x), y)


def set_bn(model, train: bool) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.training = train


def hand_grad(model, x, y, loss_fn=ce, masks=None) -> torch.Tensor:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss_fn(model, x, y), [p for _, p in named])
    parts = []
    for (name, _), g in zip(named, grads):
        flat = g.detach().double().reshape(-1)
        if masks is not None and name in masks:
            flat = flat[masks[name].reshape(-1)]
        parts.append(flat)
    return torch.cat(parts)


def hand_stack(model, batches, loss_fn=ce, masks=None, bn_train=True) -> torch.Tensor:
    m = copy.deepcopy(model)
    set_bn(m, bn_train)
    return torch.stack([hand_grad(m, x, y, loss_fn, masks) for x, y in batches])


def hand_full(model, batches, loss_fn=ce, masks=None) -> torch.Tensor:
    m = copy.deepcopy(model)
    set_bn(m, True)
    total = sum(len(y) for _, y in batches)
    return sum(hand_grad(m, x, y, loss_fn, masks) * len(y) for x, y in batches) / total


def hand_perturbed(model, sigma, seed, replicate, masks=None):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(replicate + 1):
        clone = copy.deepcopy(model)
        with torch.no_grad():
            for name, p in clone.named_parameters():
                noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
                if masks is not None and name in masks:
                    noise = noise * masks[name]
                p.add_(noise, alpha=sigma)
    return clone


def hand_pearson(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.corrcoef(a, b)[0, 1])


def random_masks(model, seed=5, names=("fc1.weight",), density=0.5):
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    return {n: torch.rand(params[n].shape, generator=g) < density for n in names}


# ------------------------------------------------------------------------------------------------
# Pearson and correlation
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pearson_identical_and_negated_are_exact(dtype, seed):
    g = torch.randn(1000, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 1e-3 + 0.2
    assert pearson(g, g) == 1.0             # exact, not approximately
    assert pearson(g, -g) == -1.0
    assert pearson(g.double().numpy(), (3 * g.double()).numpy()) == pytest.approx(1.0, abs=1e-12)
    h = torch.randn(1000, generator=torch.Generator().manual_seed(seed + 10), dtype=torch.float64)
    assert pearson(g, h) == pytest.approx(hand_pearson(g, h), abs=1e-12)
    assert math.isnan(pearson(torch.ones(5), torch.arange(5.0)))
    with pytest.raises(ValueError, match="same number"):
        pearson(torch.ones(3), torch.ones(4))


def test_correlation_sigma_zero_is_exactly_one():
    model = make_model("cnn")
    batches = make_batches("cnn")
    result = gradient_correlation(model, batches, sigma=0.0, replicates=3)
    assert isinstance(result, CorrelationResult)
    assert result.values == (1.0, 1.0, 1.0) and result.mean == 1.0 and result.std == 0.0
    masks = {"conv.weight": torch.rand(3, 2, 3, 3, generator=torch.Generator().manual_seed(0)) < 0.5}
    masked = gradient_correlation(model, batches, sigma=0.0, replicates=2, masks=masks, active_only=True)
    assert masked.values == (1.0, 1.0)
    assert masked.n_active == result.n_active - int((~masks["conv.weight"]).sum())


@pytest.mark.parametrize("active_only", [False, True])
def test_correlation_matches_hand_computation(active_only):
    model = make_model("mlp")
    masks = random_masks(model)
    with torch.no_grad():
        model.fc1.weight.mul_(masks["fc1.weight"])
    batches = make_batches("mlp", sizes=[5, 5, 3])
    result = gradient_correlation(model, batches, sigma=0.2, replicates=3, masks=masks, active_only=active_only,
                                  seed=7)
    clean = hand_full(model, batches, masks=masks)
    expected = [hand_pearson(clean, hand_full(hand_perturbed(model, 0.2, 7, r, masks if active_only else None),
                                              batches, masks=masks)) for r in range(3)]
    assert result.values == pytest.approx(expected, abs=1e-12)
    assert result.mean == pytest.approx(np.mean(expected), abs=1e-12)
    assert result.std == pytest.approx(np.std(expected, ddof=1), abs=1e-12)
    assert len(set(result.values)) == 3 and all(v < 1.0 for v in result.values)
    assert result.n_examples == 13 and result.n_batches == 3


class SignedLinear(nn.Module):
    """y_hat = W x; the loss compares with sign·y, so (W, sign) -> (-W, -sign) negates the gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2, bias=False)
        self.register_buffer("sign", torch.tensor(1.0, dtype=torch.float64))

    def forward(self, x):
        return self.lin(x)


def signed_mse(model, x, y):
    return 0.5 * (model(x) - model.sign * y).square().mean()


def test_model_level_negated_gradient_gives_minus_one():
    torch.manual_seed(0)
    model = SignedLinear().double()
    flipped = copy.deepcopy(model)
    with torch.no_grad():
        flipped.lin.weight.neg_()
        flipped.sign.fill_(-1.0)
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 2, generator=g,
                                                                                  dtype=torch.float64))
               for _ in range(4)]
    a = full_gradient(model, batches, loss_fn=signed_mse)
    b = full_gradient(flipped, batches, loss_fn=signed_mse)
    assert torch.equal(b, -a)
    assert pearson(a, b) == -1.0
    assert snapshot_correlation(model, flipped, batches, loss_fn=signed_mse) == pytest.approx(-1.0, abs=1e-12)


def test_snapshot_correlation_of_a_model_with_itself_is_one():
    model = make_model("cnn")
    batches = make_batches("cnn")
    assert snapshot_correlation(model, model, batches) == 1.0
    assert snapshot_correlation(model, copy.deepcopy(model), batches) == 1.0
    other = hand_perturbed(model, 0.3, 0, 0)
    expected = hand_pearson(hand_full(model, batches), hand_full(other, batches))
    assert snapshot_correlation(model, other, batches) == pytest.approx(expected, abs=1e-12)
    assert expected < 0.999


def test_paired_passes_share_dropout_masks():
    # dropout active: each batch's passes at the two models replay the same RNG state
    model = make_model("mlp", dropout=True).train()
    batches = make_batches("mlp")
    assert snapshot_correlation(model, model, batches) == 1.0
    assert snapshot_correlation(model, copy.deepcopy(model), batches) == 1.0
    evaluating = copy.deepcopy(model).eval()  # the snapshot takes the model's per-module modes
    assert snapshot_correlation(model, evaluating, batches) == 1.0
    assert not any(m.training for m in evaluating.modules())
    assert gradient_correlation(model, batches, sigma=0.0, replicates=2).values == (1.0, 1.0)
    curve = variance_vs_c(model, copy.deepcopy(model), batches)
    assert curve.c_star == pytest.approx(1.0, rel=1e-12) and curve.at(1.0) == pytest.approx(0.0, abs=1e-15)


def test_full_gradient_is_size_weighted_float64():
    model = make_model("cnn")
    batches = make_batches("cnn", sizes=[7, 4, 2])
    g = full_gradient(model, batches)
    assert g.dtype == torch.float64
    assert torch.allclose(g, hand_full(model, batches), rtol=0, atol=1e-12)
    # an unweighted mean of the batch gradients would differ
    unweighted = hand_stack(model, batches).mean(dim=0)
    assert not torch.allclose(g, unweighted, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Gradient variance
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_streaming_variance_equals_brute_force(kind):
    model = make_model(kind)
    batches = make_batches(kind, k=7)
    stream = gradient_variance(model, batches)
    brute = gradient_variance_brute_force(model, batches)
    var = torch.var(hand_stack(model, batches), dim=0, correction=1)
    assert isinstance(stream, VarianceResult)
    for result in (stream, brute):
        assert result.trace == pytest.approx(float(var.sum()), rel=1e-10, abs=0)
        assert result.mean_variance == pytest.approx(float(var.mean()), rel=1e-10, abs=0)
        assert result.n_batches == 7 and result.n_examples == 35
        assert result.n_active == result.n_total == var.numel()
        assert result.trace_std == 0.0 and result.replicates == 1
    # as in training, BN uses batch statistics; eval mode gives another value
    evaluated = gradient_variance(model, batches, bn_mode="eval")
    if kind == "cnn":
        var_eval = torch.var(hand_stack(model, batches, bn_train=False), dim=0)
        assert evaluated.trace == pytest.approx(float(var_eval.sum()), rel=1e-10, abs=0)
        assert abs(evaluated.trace - stream.trace) > 1e-6 * stream.trace


def test_variance_accepts_callables_and_one_shot_iterators():
    model = make_model("mlp")
    batches = make_batches("mlp")
    reference = gradient_variance(model, batches)
    assert gradient_variance(model, lambda: iter(batches)).trace == reference.trace
    assert gradient_variance(model, (b for b in batches)).trace == reference.trace


def test_variance_replicates_perturb_the_weights():
    model = make_model("cnn")
    batches = make_batches("cnn")
    result = gradient_variance(model, batches, perturb_sigma=0.05, replicates=3, seed=4)
    brute = gradient_variance_brute_force(model, batches, perturb_sigma=0.05, replicates=3, seed=4)
    assert result.per_replicate_trace == pytest.approx(brute.per_replicate_trace, rel=1e-10, abs=0)
    for r in range(3):
        var = torch.var(hand_stack(hand_perturbed(model, 0.05, 4, r), batches), dim=0)
        assert result.per_replicate_trace[r] == pytest.approx(float(var.sum()), rel=1e-10, abs=0)
        assert result.per_replicate_mean_variance[r] == pytest.approx(float(var.mean()), rel=1e-10, abs=0)
    assert len(set(result.per_replicate_trace)) == 3
    assert result.trace == pytest.approx(np.mean(result.per_replicate_trace), rel=1e-14)
    assert result.trace_std == pytest.approx(np.std(result.per_replicate_trace, ddof=1), rel=1e-12)
    assert result.mean_variance_std > 0
    zero = gradient_variance(model, batches, perturb_sigma=0.0, replicates=3)
    assert len(set(zero.per_replicate_trace)) == 1 and zero.trace_std == 0.0
    assert zero.trace == gradient_variance(model, batches).trace


def test_masked_coordinates_do_not_count():
    model = make_model("mlp")
    masks = random_masks(model)
    batches = make_batches("mlp")
    n_masked = int((~masks["fc1.weight"]).sum())
    result = gradient_variance(model, batches, masks=masks)
    total = sum(p.numel() for p in model.parameters())
    assert result.n_active == total - n_masked and result.n_total == total
    var = torch.var(hand_stack(model, batches, masks=masks), dim=0)
    assert result.trace == pytest.approx(float(var.sum()), rel=1e-10, abs=0)
    assert result.mean_variance == pytest.approx(float(var.mean()), rel=1e-10, abs=0)

    # a loss term whose gradient lives only on masked coordinates and varies from batch to batch
    def noisy_on_masked(m, x, y):
        off = m.fc1.weight * (~masks["fc1.weight"])
        return ce(m, x, y) + 50.0 * x.sum() * off.square().sum()

    changed = gradient_variance(model, batches, masks=masks, loss_fn=noisy_on_masked)
    assert changed.trace == pytest.approx(result.trace, rel=1e-12, abs=0)
    assert gradient_variance(model, batches, loss_fn=noisy_on_masked).trace > 2 * gradient_variance(model, batches).trace
    # a MaskState works like the dict
    assert gradient_variance(model, batches, masks=MaskState(masks)).trace == result.trace


# ------------------------------------------------------------------------------------------------
# Per-sample variance
# ------------------------------------------------------------------------------------------------

def test_per_sample_variance_equals_a_loop_over_examples():
    model = make_model("mlp")
    masks = random_masks(model)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(13, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (13,), generator=g)
    for mk in (None, masks):
        rows = torch.stack([hand_grad(model, x[i:i + 1], y[i:i + 1], masks=mk) for i in range(13)])
        var = torch.var(rows, dim=0, correction=1)
        result = per_sample_gradient_variance(model, x, y, masks=mk, chunk_size=5)  # chunks of 5, 5, 3
        assert result.trace == pytest.approx(float(var.sum()), rel=1e-10, abs=0)
        assert result.mean_variance == pytest.approx(float(var.mean()), rel=1e-10, abs=0)
        assert result.n_examples == 13 and result.n_active == var.numel()


def test_per_sample_variance_refuses_batchnorm_in_train_mode():
    model = make_model("cnn")
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(6, 2, 4, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g)
    with pytest.raises(ValueError, match="CNN.*BatchNorm"):
        per_sample_gradient_variance(model, x, y)
    model.eval()  # running statistics: per-example gradients are defined
    rows = torch.stack([hand_grad(model, x[i:i + 1], y[i:i + 1]) for i in range(6)])
    result = per_sample_gradient_variance(model, x, y)
    assert result.trace == pytest.approx(float(torch.var(rows, dim=0).sum()), rel=1e-10, abs=0)


# ------------------------------------------------------------------------------------------------
# Variance of the corrected gradient against c
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.05, 0.6])
def test_variance_vs_c_quadratic(sigma):
    model = make_model("cnn")
    snapshot = hand_perturbed(model, sigma, 3, 0)
    masks = {"fc.weight": torch.rand(3, 48, generator=torch.Generator().manual_seed(9)) < 0.6}
    batches = make_batches("cnn", k=8)
    curve = variance_vs_c(model, snapshot, batches, masks=masks)
    assert isinstance(curve, VarianceCurve)
    assert list(curve.frame.columns) == ["c", "variance", "variance_ratio"] and len(curve.frame) == 61

    G, O = hand_stack(model, batches, masks=masks), hand_stack(snapshot, batches, masks=masks)
    Gc, Oc = G - G.mean(0), O - O.mean(0)
    var_g = float(Gc.square().sum() / (len(G) - 1))
    var_o = float(Oc.square().sum() / (len(G) - 1))
    cov = float((Gc * Oc).sum() / (len(G) - 1))
    c_star = cov / var_o
    assert curve.var_sgd == pytest.approx(var_g, rel=1e-10)
    assert curve.var_old == pytest.approx(var_o, rel=1e-10)
    assert curve.cov == pytest.approx(cov, rel=1e-10)
    assert curve.c_star == pytest.approx(c_star, rel=1e-9)

    fine = variance_vs_c(model, snapshot, batches, masks=masks, c_grid=np.linspace(-1.0, 2.0, 30001))
    best = float(fine.frame["c"][fine.frame["variance"].idxmin()])
    assert abs(best - c_star) <= 1e-4 + 1e-12
    assert curve.at(0.0) == pytest.approx(gradient_variance(model, batches, masks=masks).trace, rel=1e-10, abs=0)
    assert curve.frame["variance_ratio"].iloc[0] == pytest.approx(1.0, rel=1e-12)

    cs = [0.0, 0.3, c_star, 1.0, 1.4]
    empirical = empirical_variance_of_corrected(model, snapshot, batches, cs, masks=masks)
    assert empirical == pytest.approx(curve.at(np.array(cs)), rel=1e-9, abs=0)
    g_tilde = hand_full(snapshot, batches, masks=masks)
    assert torch.allclose(curve.full_grad_snapshot, g_tilde, rtol=0, atol=1e-12)
    # g̃ is a constant shift: any given g̃ gives the same variance
    shifted = empirical_variance_of_corrected(model, snapshot, batches, 0.7, masks=masks,
                                              full_grad_snapshot=torch.ones_like(g_tilde))
    assert shifted == pytest.approx(curve.at(0.7), rel=1e-9, abs=0)
    # a worse snapshot correlates less
    if sigma > 0.5:
        assert curve.c_star < 0.9
    else:
        assert curve.c_star > 0.8


def test_plot_variance_vs_c():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = make_model("mlp")
    batches = make_batches("mlp")
    curve = variance_vs_c(model, hand_perturbed(model, 0.1, 0, 0), batches)
    fig = plot_variance_vs_c(curve, c_hat=2.5, gamma=0.1)
    ax = fig.axes[0]
    verticals = sorted(line.get_xdata()[0] for line in ax.lines if len(set(line.get_xdata())) == 1
                       and line.get_linestyle() != "None")
    assert verticals == pytest.approx(sorted([curve.c_star, 2.5, 0.25]))
    curve_line = ax.lines[0]
    assert max(curve_line.get_xdata()) >= 2.5  # widened to show ĉ
    plt.close(fig)
    with pytest.raises(ValueError, match="gamma"):
        plot_variance_vs_c(curve, gamma=0.1)


# ------------------------------------------------------------------------------------------------
# Loss-based c*
# ------------------------------------------------------------------------------------------------

def test_loss_based_c_star_matches_hand_computation_and_the_corrector():
    model = make_model("cnn")
    snapshot = hand_perturbed(model, 0.3, 1, 0)
    batches = make_batches("cnn", k=7)
    cur_m, old_m = copy.deepcopy(model), copy.deepcopy(snapshot)
    set_bn(cur_m, True), set_bn(old_m, True)
    with torch.no_grad():
        cur = np.array([float(ce(cur_m, x, y)) for x, y in batches])
        old = np.array([float(ce(old_m, x, y)) for x, y in batches])
    k = len(batches)
    cov = float(((cur - cur.mean()) * (old - old.mean())).sum() / (k - 1))
    var = float(((old - old.mean()) ** 2).sum() / (k - 1))
    value = loss_based_c_star(model, snapshot, batches)
    assert value == pytest.approx(cov / var, rel=1e-12)

    # the same number GradientCorrector estimates at a refresh with ``snapshot`` as θ̃
    live = copy.deepcopy(snapshot).train()
    corrector = GradientCorrector(live, rule="agent", gamma=1.0, alpha=1.0)
    corrector.refresh(batches, ce)
    with torch.no_grad():
        for p, q in zip(live.parameters(), model.parameters()):
            p.copy_(q)
    expected = loss_based_c_star(live, corrector.snapshot_model, batches)
    assert corrector.refresh(batches, ce)["c_hat_star"] == pytest.approx(expected, rel=1e-12)
    assert math.isnan(loss_based_c_star(model, snapshot, batches[:1]))


# ------------------------------------------------------------------------------------------------
# Every diagnostic leaves everything as it was
# ------------------------------------------------------------------------------------------------

def _dirty(model: nn.Module, seed: int, flags: str) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model.train()
    model.bn.eval()  # BN on running statistics inside a training model: diagnostics switch it
    if flags == "eval":
        model.eval()
        model.drop.train()
    with torch.no_grad():
        model.bn.running_mean.add_(torch.randn(3, generator=g))
        model.bn.running_var.mul_(1.5)
        model.bn.num_batches_tracked.fill_(7)
    for i, p in enumerate(model.parameters()):
        p.grad = None if i == 1 else torch.randn(p.shape, generator=g, dtype=p.dtype)
    return model


def _record(*models):
    state = []
    for m in models:
        state.append({
            "tensors": {k: v.detach().clone() for k, v in m.state_dict(keep_vars=True).items()},
            "ids": [id(t) for t in (*m.parameters(), *m.buffers())],
            "modes": [mm.training for mm in m.modules()],
            "grads": [(p.grad, None if p.grad is None else p.grad.clone()) for p in m.parameters()],
        })
    rng = (torch.get_rng_state().clone(), random.getstate(), np.random.get_state())
    return state, rng


def _assert_unchanged(before, models):
    state, rng = before
    for saved, m in zip(state, models):
        now = m.state_dict(keep_vars=True)
        assert set(now) == set(saved["tensors"])
        for k, v in saved["tensors"].items():
            assert now[k].dtype == v.dtype and torch.equal(now[k].detach(), v), k
        assert [id(t) for t in (*m.parameters(), *m.buffers())] == saved["ids"]
        assert [mm.training for mm in m.modules()] == saved["modes"]
        for p, (obj, values) in zip(m.parameters(), saved["grads"]):
            assert p.grad is obj
            if obj is not None:
                assert torch.equal(p.grad, values)
    assert torch.equal(torch.get_rng_state(), rng[0])
    assert random.getstate() == rng[1]
    np_now = np.random.get_state()
    assert np_now[0] == rng[2][0] and np.array_equal(np_now[1], rng[2][1]) and np_now[2:] == rng[2][2:]


DIAGNOSTICS = {
    "gradient_variance": lambda m, s, b, x, y, mk: gradient_variance(m, b, masks=mk, perturb_sigma=0.01,
                                                                     replicates=2),
    "gradient_variance_brute_force": lambda m, s, b, x, y, mk: gradient_variance_brute_force(m, b, masks=mk),
    "per_sample_gradient_variance": lambda m, s, b, x, y, mk: per_sample_gradient_variance(m, x, y, masks=mk),
    "gradient_correlation": lambda m, s, b, x, y, mk: gradient_correlation(m, b, sigma=0.01, replicates=2,
                                                                           masks=mk, active_only=True),
    "full_gradient": lambda m, s, b, x, y, mk: full_gradient(m, b, masks=mk),
    "snapshot_correlation": lambda m, s, b, x, y, mk: snapshot_correlation(m, s, b, masks=mk),
    "loss_based_c_star": lambda m, s, b, x, y, mk: loss_based_c_star(m, s, b),
    "variance_vs_c": lambda m, s, b, x, y, mk: variance_vs_c(m, s, b, masks=mk),
    "empirical_variance_of_corrected": lambda m, s, b, x, y, mk: empirical_variance_of_corrected(m, s, b, [0, 0.5],
                                                                                                 masks=mk),
}


@pytest.mark.parametrize("name", sorted(DIAGNOSTICS))
def test_diagnostics_leave_model_and_rng_bit_identical(name):
    model = _dirty(make_model("cnn", dtype=torch.float32, dropout=True), 0, "train")
    snapshot = _dirty(make_model("cnn", seed=1, dtype=torch.float32, dropout=True), 1, "eval")
    masks = {"conv.weight": torch.rand(3, 2, 3, 3, generator=torch.Generator().manual_seed(0)) < 0.5}
    data = make_batches("cnn", dtype=torch.float32)

    def batches():  # draws from every global generator while iterating
        for b in data:
            torch.rand(1), random.random(), np.random.rand()
            yield b

    torch.manual_seed(123), random.seed(4), np.random.seed(5)
    before = _record(model, snapshot)
    DIAGNOSTICS[name](model, snapshot, batches, data[0][0], data[0][1], masks)
    _assert_unchanged(before, [model, snapshot])


# ------------------------------------------------------------------------------------------------
# Bad inputs
# ------------------------------------------------------------------------------------------------

def _bad_cases():
    m = make_model("mlp")
    s = copy.deepcopy(m)
    b = make_batches("mlp", k=3)
    return [
        ("sigma", lambda: gradient_correlation(m, b, sigma=-0.1)),
        ("sigma", lambda: gradient_correlation(m, b, sigma=float("nan"))),
        ("perturb_sigma", lambda: gradient_variance(m, b, perturb_sigma=-1.0)),
        ("replicates", lambda: gradient_correlation(m, b, replicates=0)),
        ("replicates", lambda: gradient_variance(m, b, replicates=0)),
        ("replicates", lambda: gradient_variance_brute_force(m, b, replicates=1.5)),
        ("batches", lambda: gradient_variance(m, [])),
        ("batches", lambda: gradient_variance(m, b[:1])),
        ("batches", lambda: gradient_variance_brute_force(m, [])),
        ("batches", lambda: gradient_correlation(m, [])),
        ("batches", lambda: full_gradient(m, [])),
        ("batches", lambda: snapshot_correlation(m, s, [])),
        ("batches", lambda: loss_based_c_star(m, s, [])),
        ("batches", lambda: variance_vs_c(m, s, [])),
        ("batches", lambda: empirical_variance_of_corrected(m, s, [], 0.5)),
        ("bn_mode", lambda: gradient_variance(m, b, bn_mode="batch")),
        ("bn_mode", lambda: gradient_variance_brute_force(m, b, bn_mode=None)),
        ("bn_mode", lambda: gradient_correlation(m, b, bn_mode="Train")),
        ("bn_mode", lambda: full_gradient(m, b, bn_mode="x")),
        ("bn_mode", lambda: snapshot_correlation(m, s, b, bn_mode="x")),
        ("bn_mode", lambda: loss_based_c_star(m, s, b, bn_mode="x")),
        ("bn_mode", lambda: variance_vs_c(m, s, b, bn_mode="x")),
        ("bn_mode", lambda: empirical_variance_of_corrected(m, s, b, 0.5, bn_mode="x")),
        ("masks", lambda: gradient_variance(m, b, masks={"nope.weight": torch.ones(3, dtype=torch.bool)})),
        ("masks", lambda: gradient_variance(m, b, masks={"fc1.weight": torch.ones(8, 6)})),
        ("c_grid", lambda: variance_vs_c(m, s, b, c_grid=[])),
        ("snapshot_model", lambda: variance_vs_c(m, make_model("cnn"), b)),
        ("x", lambda: per_sample_gradient_variance(m, b[0][0][:1], b[0][1][:1])),
    ]


@pytest.mark.parametrize("index", range(len(_bad_cases())))
def test_bad_inputs_raise_naming_the_argument(index):
    argument, call = _bad_cases()[index]
    with pytest.raises(ValueError, match=rf"\b{argument}\b"):
        call()
