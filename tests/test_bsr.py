"""BSR-Net rewiring: exact global count, fixed signs, clean optimizer state, resumable, private RNG."""
import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from agent_lab.models import build_model
from agent_lab.sparse.bsr import BSRRewiring, _sample_distinct, bsr_vgg16_densities
from agent_lab.sparse.masks import maskable_parameters

RECONNECT = torch.tensor(1e-12, dtype=torch.float32)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))


def make(arch: str, seed: int = 0):
    torch.manual_seed(seed)
    if arch == "small":
        return small_net(), 8
    return build_model("vgg16", 10, width=0.125), 16


def batches(size: int, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(8, 3, size, size, generator=g), torch.randint(10, (8,), generator=g)) for _ in range(n)]


def step(model, optimizer, x, y):
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


def check_invariants(sp: BSRRewiring, optimizer, signs: dict, target: int, previous: dict | None):
    assert sp.masks.nnz() == target
    for name, w in sp.params.items():
        mask = sp.masks[name]
        s = torch.where(signs[name], 1.0, -1.0)
        assert torch.equal(sp.positive[name], signs[name])           # signs fixed at init
        assert torch.all(w[~mask] == 0)                                # disconnected: exactly 0
        assert torch.all((s * w)[mask] > 0)                            # connected iff theta = s*w > 0
        buf = optimizer.state[w].get("momentum_buffer")
        if buf is not None:
            assert torch.all(buf[~mask] == 0)                          # no stale momentum
        if previous is not None:
            fresh = mask & ~previous[name]
            assert torch.all(w[fresh].abs() == RECONNECT)              # reconnected at theta = 1e-12
            if buf is not None:
                assert torch.all(buf[fresh] == 0)


NOISY = dict(noise_form="langevin", noise_scale=1e-5)  # std sqrt(2 * lr * T): rewires even at 99% sparsity


@pytest.mark.parametrize("noise", [{}, NOISY], ids=["default-noise", "langevin"])
@pytest.mark.parametrize("arch,init,steps", [("small", "erk", 60), ("vgg16", "erk", 30), ("vgg16", "bsr-vgg16", 30)])
@pytest.mark.parametrize("sparsity", [0.9, 0.99])
def test_invariants_hold_after_every_step(arch, init, steps, sparsity, noise):
    model, size = make(arch)
    signs = {name: w.detach() >= 0 for name, w in maskable_parameters(model).items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sp = BSRRewiring(model, optimizer, sparsity=sparsity, initial_densities=init, seed=1, **noise)
    target = round((1 - sparsity) * sum(w.numel() for w in sp.params.values()))
    assert sp.target == target
    check_invariants(sp, optimizer, signs, target, None)
    changed = 0
    for x, y in batches(size, steps):
        previous = {name: m.clone() for name, m in sp.masks.masks.items()}
        step(model, optimizer, x, y)
        check_invariants(sp, optimizer, signs, target, previous)
        changed += sp.last_reconnected
        assert sp.last_reconnected == sp.last_disconnected  # the global count never drifts
    if noise or sparsity == 0.9:
        assert changed > 0


@pytest.mark.parametrize("regrowth", ["layer-size", "uniform"])
def test_rewiring_happens_at_a_large_learning_rate(regrowth):
    model, size = make("small")
    signs = {name: w.detach() >= 0 for name, w in maskable_parameters(model).items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    sp = BSRRewiring(model, optimizer, sparsity=0.9, regrowth=regrowth, seed=2)
    initial = {name: m.clone() for name, m in sp.masks.masks.items()}
    for x, y in batches(size, 50):
        step(model, optimizer, x, y)
        check_invariants(sp, optimizer, signs, sp.target, None)
    moved = sum(int((sp.masks[name] & ~initial[name]).sum()) for name in initial)
    assert moved > 0
    assert sp.masks.itop_rate() > sp.masks.density()
    assert sp.masks.updates == 50 and sp.step == 50


def test_noise_alone_rewires_and_no_noise_changes_nothing():
    def run(noise_scale):
        model, size = make("small")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        sp = BSRRewiring(model, optimizer, sparsity=0.9, noise_scale=noise_scale, noise_form="langevin", seed=3)
        before = {name: (sp.masks[name].clone(), w.detach().clone()) for name, w in sp.params.items()}
        for x, _ in batches(size, 5):
            optimizer.zero_grad()
            (0.0 * model(x).sum()).backward()  # zero gradients: only the noise moves theta
            optimizer.step()
        return sp, before

    sp, before = run(0.0)
    for name, w in sp.params.items():
        assert torch.equal(sp.masks[name], before[name][0]) and torch.equal(w, before[name][1])
    sp, before = run(1.0)  # std sqrt(2 * 0.1 * 1) ~ 0.45 >> |theta|: many connections flip
    assert sum(int((sp.masks[name] != before[name][0]).sum()) for name in sp.params) > 0
    assert sp.masks.nnz() == sp.target


def test_bsr_vgg16_initial_densities():
    table = bsr_vgg16_densities(0.1)
    assert len(table) == 16 and table[:4] == (0.6, 0.6, 0.2, 0.2) and table[-1] == 0.6
    assert all(d == pytest.approx(0.05) for d in table[4:15])
    for sparsity in (0.9, 0.99):
        model, _ = make("vgg16")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sp = BSRRewiring(model, optimizer, sparsity=sparsity, initial_densities="bsr-vgg16", seed=0)
        floors = {name: math.floor(d * w.numel())
                  for (name, w), d in zip(sp.params.items(), bsr_vgg16_densities(1 - sparsity))}
        counts = {name: int(m.sum()) for name, m in sp.masks.masks.items()}
        assert sp.masks.nnz() == sp.target
        if sum(floors.values()) <= sp.target:   # topped up at width 0.125, 90% sparsity
            assert all(counts[name] >= floors[name] for name in floors)
        else:                                   # trimmed at width 0.125, 99% sparsity
            assert all(counts[name] <= floors[name] for name in floors)


def test_explicit_density_dict():
    model, _ = make("small")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    names = list(maskable_parameters(model))
    sp = BSRRewiring(model, optimizer, sparsity=0.8, initial_densities={n: 0.2 for n in names}, seed=0)
    assert sp.masks.nnz() == sp.target == round(0.2 * sum(w.numel() for w in sp.params.values()))


@pytest.mark.parametrize("arch,init", [("small", "erk"), ("vgg16", "bsr-vgg16")])
def test_state_dict_round_trip_reproduces_the_run(arch, init):
    model, size = make(arch, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, weight_decay=5e-4)
    sp = BSRRewiring(model, optimizer, sparsity=0.9, initial_densities=init, seed=5)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.8)  # noise follows the live lr
    data = batches(size, 12)
    for x, y in data[:6]:
        step(model, optimizer, x, y)
        schedule.step()
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict(), sp.state_dict(), schedule.state_dict()))
    reference = []
    for x, y in data[6:]:
        step(model, optimizer, x, y)
        schedule.step()
        reference.append({name: (sp.masks[name].clone(), w.detach().clone()) for name, w in sp.params.items()})

    model2, _ = make(arch, seed=99)  # different weights, signs and masks until loaded
    optimizer2 = torch.optim.SGD(model2.parameters(), lr=0.2, momentum=0.9, weight_decay=5e-4)
    sp2 = BSRRewiring(model2, optimizer2, sparsity=0.9, initial_densities=init, seed=77)
    schedule2 = torch.optim.lr_scheduler.StepLR(optimizer2, step_size=1, gamma=0.8)
    model2.load_state_dict(saved[0])
    optimizer2.load_state_dict(saved[1])  # replaces the optimizer's param-group dicts
    sp2.load_state_dict(saved[2])
    schedule2.load_state_dict(saved[3])
    for (x, y), expected in zip(data[6:], reference):
        step(model2, optimizer2, x, y)
        schedule2.step()
        for name, w in sp2.params.items():
            assert torch.equal(sp2.masks[name], expected[name][0])
            assert torch.equal(w.detach(), expected[name][1])
    assert sp2.step == sp.step


def test_global_rng_is_untouched():
    model, size = make("small")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    data = batches(size, 10)
    state = torch.get_rng_state()
    sp = BSRRewiring(model, optimizer, sparsity=0.9, seed=0)
    for x, y in data:
        step(model, optimizer, x, y)
    assert sp.masks.itop_rate() > sp.masks.density()  # masks were drawn and rewired meanwhile
    assert torch.equal(torch.get_rng_state(), state)


def test_l1_prior_shrinks_connected_theta():
    model, size = make("small")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sp = BSRRewiring(model, optimizer, sparsity=0.5, noise_scale=0.0, l1=1e-2, seed=0)
    before = {name: (sp.masks[name].clone(), w.detach().clone()) for name, w in sp.params.items()}
    x, _ = batches(size, 1)[0]
    optimizer.zero_grad()
    (0.0 * model(x).sum()).backward()
    optimizer.step()
    for name, w in sp.params.items():
        mask, w0 = before[name]
        survived = mask & sp.masks[name] & (w0.abs() > 2e-3)  # far from 0: neither lost nor reconnected
        assert survived.any()
        torch.testing.assert_close(w[survived].abs(), w0[survived].abs() - 1e-3)  # theta -= lr * l1
        assert torch.all(w[mask & (w0.abs() < 1e-3)] != w0[mask & (w0.abs() < 1e-3)])


def test_sample_distinct_is_a_uniform_subset():
    g = torch.Generator().manual_seed(0)
    hits = torch.zeros(40, dtype=torch.long)
    for _ in range(2000):
        draw = _sample_distinct(40, 5, g)  # sparse: rejection sampling
        assert draw.numel() == 5 and draw.unique().numel() == 5 and 0 <= int(draw.min()) and int(draw.max()) < 40
        hits += torch.bincount(draw, minlength=40)
    expected = 2000 * 5 / 40
    assert torch.all((hits - expected).abs() < 5 * math.sqrt(expected))
    dense = _sample_distinct(10, 8, g)
    assert dense.unique().numel() == 8


def test_adam_state_is_reset_at_disconnected_positions():
    model, size = make("small")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    sp = BSRRewiring(model, optimizer, sparsity=0.9, seed=0)
    for x, y in batches(size, 10):
        step(model, optimizer, x, y)
        assert sp.masks.nnz() == sp.target
        for name, w in sp.params.items():
            mask = sp.masks[name]
            assert torch.all(w[~mask] == 0)
            for key in ("exp_avg", "exp_avg_sq"):
                assert torch.all(optimizer.state[w][key][~mask] == 0)


@pytest.mark.parametrize("kwargs,argument", [
    (dict(noise_scale=-1.0), "noise_scale"),
    (dict(noise_scale=float("nan")), "noise_scale"),
    (dict(noise_form="gaussian"), "noise_form"),
    (dict(l1=-0.1), "l1"),
    (dict(reconnect_value=0.0), "reconnect_value"),
    (dict(regrowth="magnitude"), "regrowth"),
    (dict(sparsity=1.0), "sparsity"),
    (dict(sparsity=0.0), "sparsity"),
    (dict(sparsity=None), "sparsity"),
    (dict(initial_densities="bsr-vgg16"), "initial_densities"),   # the small net has 4 layers, not 16
    (dict(initial_densities="lognormal"), "initial_densities"),
    (dict(initial_densities={"0.weight": 0.5}), "initial_densities"),
    (dict(distribution="nm"), "distribution"),
])
def test_bad_hyper_parameters_raise(kwargs, argument):
    model, _ = make("small")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    args = dict(sparsity=0.9) | kwargs
    with pytest.raises(ValueError, match=rf"^{argument}\b"):
        BSRRewiring(model, optimizer, **args)


def _update_by_indexing(sp: BSRRewiring) -> None:
    """The rewiring written the plain way (boolean indexing, nonzero, a host read per layer): the
    reference the device-friendly update must match bit for bit."""
    from agent_lab.sparse.optimizer_state import mask_optimizer_state_

    with torch.no_grad():
        kept = {}
        for name, w in sp.params.items():
            mask, positive = sp.masks[name], sp.positive[name]
            lr = sp.optimizer.param_groups[0]["lr"]
            std = sp._noise_std(lr)
            theta = torch.where(positive, w, -w)
            nnz = int(mask.sum())
            if nnz and (std > 0 or sp.l1 > 0):
                delta = torch.full((nnz,), -lr * sp.l1, dtype=torch.float32)
                if std > 0:
                    delta += std * torch.randn(nnz, generator=sp.generator, dtype=torch.float32)
                theta[mask] += delta
            keep = mask & (theta > 0)
            w.copy_(torch.where(keep, torch.where(positive, theta, -theta), torch.zeros_like(w)))
            kept[name] = keep
        deficit = sp.target - sum(int(k.sum()) for k in kept.values())
        free = {name: k.numel() - int(k.sum()) for name, k in kept.items()}
        chosen = sp._draw_reconnections(deficit, free, {n: k.numel() for n, k in kept.items()}, sp.generator)
        for name, w in sp.params.items():
            keep, new = kept[name], kept[name]
            if name in chosen:
                flat = keep.reshape(-1).clone()
                flat[(~keep).reshape(-1).nonzero().squeeze(1)[chosen[name]]] = True
                new = flat.view_as(keep)
                w.copy_(torch.where(new & ~keep, sp._signed_reconnect_value(name, w), w))
            mask_optimizer_state_(sp.optimizer, w, keep)
            sp.masks.set(name, new)


@pytest.mark.parametrize("regrowth", ["layer-size", "uniform"])
def test_the_update_matches_plain_indexing_bit_for_bit(regrowth):
    runs = []
    for plain in (False, True):
        model, size = make("vgg16")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
        sp = BSRRewiring(model, optimizer, sparsity=0.9, regrowth=regrowth, seed=5, **NOISY)
        if plain:
            sp.update_masks = lambda sp=sp: _update_by_indexing(sp)
        reconnected = 0
        for x, y in batches(size, 12):
            step(model, optimizer, x, y)
            reconnected += sp.last_reconnected
        runs.append((model.state_dict(), {n: m.clone() for n, m in sp.masks.masks.items()}, reconnected))
    (weights, masks, reconnected), (plain_weights, plain_masks, _) = runs
    assert reconnected > 0  # rewiring did happen
    for name in weights:
        assert torch.equal(weights[name], plain_weights[name]), name
    for name in masks:
        assert torch.equal(masks[name], plain_masks[name]), name


def test_the_update_reads_the_host_once_and_finds_positions_without_nonzero(monkeypatch):
    model, size = make("vgg16")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    sp = BSRRewiring(model, optimizer, sparsity=0.9, seed=5, **NOISY)
    layer_sizes = {w.numel() for w in sp.params.values()}
    calls = {"tolist": 0, "nonzero on a layer": 0, "boolean index on a layer": 0}
    real = {name: getattr(torch.Tensor, name) for name in ("tolist", "nonzero", "__getitem__", "__setitem__")}

    def tolist(self, *args, **kwargs):
        calls["tolist"] += 1
        return real["tolist"](self, *args, **kwargs)

    def nonzero(self, *args, **kwargs):
        calls["nonzero on a layer"] += self.numel() in layer_sizes
        return real["nonzero"](self, *args, **kwargs)

    def boolean(index) -> bool:
        return isinstance(index, torch.Tensor) and index.dtype == torch.bool and index.numel() in layer_sizes

    def getitem(self, index):
        calls["boolean index on a layer"] += boolean(index)
        return real["__getitem__"](self, index)

    def setitem(self, index, value):
        calls["boolean index on a layer"] += boolean(index)
        return real["__setitem__"](self, index, value)

    data = batches(size, 3)
    step(model, optimizer, *data[0])  # the first update reads the layers' counts once more
    for name, replacement in (("tolist", tolist), ("nonzero", nonzero), ("__getitem__", getitem),
                              ("__setitem__", setitem)):
        monkeypatch.setattr(torch.Tensor, name, replacement)
    sp.update_masks()
    sp.update_masks()
    monkeypatch.undo()
    assert calls == {"tolist": 2, "nonzero on a layer": 0, "boolean index on a layer": 0}
    assert sp.masks.nnz() == sp.target
