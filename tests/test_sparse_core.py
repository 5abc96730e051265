import copy
import math

import pytest
import torch
from torch import nn

from agent_lab.models import build_model
from agent_lab.sparse.distributions import layer_counts, random_masks
from agent_lab.sparse.engine import DynamicSparsity, Sparsifier
from agent_lab.sparse.masks import MaskState, maskable_parameters
from agent_lab.sparse.nm import check_nm, nm_masks
from agent_lab.sparse.optimizer_state import _REGISTRY, UnknownOptimizerStateError, register_optimizer_state
from agent_lab.sparse.schedules import UpdateSchedule
from agent_lab.sparse.scorers import drop_by_magnitude, gradient_scores, grow, random_scores, unfired_scores

SPARSITIES = (0.5, 0.9, 0.99)
GROWTHS = ("random", "gradient", "random-unfired", "optimizer-gradient")


@pytest.fixture(autouse=True)
def _one_thread():
    # The models here are tiny: extra intra-op threads only contend with other test processes
    # (conftest restores the thread count afterwards).
    torch.set_num_threads(1)


def vgg_shapes():
    return {name: p.shape for name, p in maskable_parameters(build_model("vgg16", 10, width=0.125)).items()}


SHAPE_SETS = {
    "vgg16-w0.125": vgg_shapes(),
    "mlp": {"fc1": (300, 784), "fc2": (100, 300), "fc3": (10, 100)},
    "conv-mixed": {"conv1": (16, 3, 3, 3), "conv2": (64, 16, 3, 3), "conv3": (128, 64, 3, 3), "fc": (10, 128)},
}


def erk_reference_shares(shapes, sparsity):
    """Capped ERK by bisection: the scale ``e`` with sum_l min(1, e * raw_l) * n_l = (1 - s) * N."""
    numel = {k: math.prod(s) for k, s in shapes.items()}
    raw = {k: sum(s) / numel[k] for k, s in shapes.items()}
    target = (1 - sparsity) * sum(numel.values())
    lo, hi = 0.0, 1.0 / min(raw.values())
    for _ in range(200):
        mid = (lo + hi) / 2
        if sum(min(1.0, mid * raw[k]) * numel[k] for k in shapes) < target:
            lo = mid
        else:
            hi = mid
    return {k: min(1.0, hi * raw[k]) * numel[k] for k in shapes}


def tiny_conv(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))


def batch(step):
    g = torch.Generator().manual_seed(1000 + step)
    return torch.rand(8, 3, 6, 6, generator=g), torch.randint(0, 4, (8,), generator=g)


def train_step(model, optimizer, step):
    x, y = batch(step)
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def make_optimizer(kind, params):
    if kind == "sgd":
        return torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    if kind == "adam":
        return torch.optim.Adam(params, lr=0.01, weight_decay=5e-4)
    return torch.optim.AdamW(params, lr=0.01, amsgrad=True)


# --- distributions ----------------------------------------------------------------------------


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("shape_set", SHAPE_SETS)
def test_erk_counts_are_exact_and_within_one_weight_of_capped_erk(shape_set, sparsity):
    shapes = SHAPE_SETS[shape_set]
    counts = layer_counts(shapes, sparsity, "erk")
    total = sum(math.prod(s) for s in shapes.values())
    assert sum(counts.values()) == round((1 - sparsity) * total)
    for name, share in erk_reference_shares(shapes, sparsity).items():
        assert abs(counts[name] - share) < 1 + 1e-6, name
        assert 0 <= counts[name] <= math.prod(shapes[name])


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("shape_set", SHAPE_SETS)
def test_uniform_counts(shape_set, sparsity):
    shapes = SHAPE_SETS[shape_set]
    counts = layer_counts(shapes, sparsity, "uniform")
    total = sum(math.prod(s) for s in shapes.values())
    assert sum(counts.values()) == round((1 - sparsity) * total)
    for name, shape in shapes.items():
        assert abs(counts[name] - (1 - sparsity) * math.prod(shape)) < 1


def test_erk_caps_a_layer_that_would_exceed_density_one():
    shapes = {"big": (256, 256, 3, 3), "small": (10, 4)}
    numel = {k: math.prod(s) for k, s in shapes.items()}
    raw = {k: sum(s) / numel[k] for k, s in shapes.items()}
    target = 0.5 * sum(numel.values())
    uncapped_scale = target / sum(raw[k] * numel[k] for k in shapes)
    assert uncapped_scale * raw["small"] > 1  # plain ERK would give the small layer density > 1
    counts = layer_counts(shapes, 0.5, "erk")
    assert counts["small"] == 40
    assert counts["big"] == round(target) - 40


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_erk_small_layers_are_denser(sparsity):
    shapes = SHAPE_SETS["conv-mixed"]
    counts = layer_counts(shapes, sparsity, "erk")
    ratio = {k: sum(s) / math.prod(s) for k, s in shapes.items()}
    by_ratio = sorted(shapes, key=lambda k: ratio[k], reverse=True)
    dens = {k: counts[k] / math.prod(shapes[k]) for k in shapes}
    for a, b in zip(by_ratio, by_ratio[1:]):
        slack = 1 / math.prod(shapes[a]) + 1 / math.prod(shapes[b])
        assert dens[a] >= dens[b] - slack
    assert dens[by_ratio[0]] > dens[by_ratio[-1]]


def test_erk_power_scale_zero_is_uniform():
    shapes = SHAPE_SETS["mlp"]
    assert layer_counts(shapes, 0.9, "erk", erk_power_scale=0.0) == layer_counts(shapes, 0.9, "uniform")


def test_zero_sparsity_is_dense():
    shapes = SHAPE_SETS["conv-mixed"]
    assert layer_counts(shapes, 0.0) == {k: math.prod(s) for k, s in shapes.items()}


@pytest.mark.parametrize("sparsity", [1.0, -0.1, 1.5, "0.5", True])
def test_invalid_sparsity_is_rejected(sparsity):
    with pytest.raises(ValueError, match="sparsity"):
        layer_counts(SHAPE_SETS["mlp"], sparsity)


def test_invalid_distribution_names_the_choices():
    with pytest.raises(ValueError, match=r"distribution: 'erdos'.*uniform, erk"):
        layer_counts(SHAPE_SETS["mlp"], 0.9, "erdos")


def test_random_masks_exact_counts_reproducible_and_global_rng_untouched():
    shapes = SHAPE_SETS["conv-mixed"]
    counts = layer_counts(shapes, 0.9)
    rng = torch.get_rng_state()
    a = random_masks(shapes, counts, torch.Generator().manual_seed(5))
    b = random_masks(shapes, counts, torch.Generator().manual_seed(5))
    c = random_masks(shapes, counts, torch.Generator().manual_seed(6))
    assert torch.equal(torch.get_rng_state(), rng)
    for name in shapes:
        assert a[name].dtype == torch.bool and a[name].shape == torch.Size(shapes[name])
        assert int(a[name].sum()) == counts[name]
        assert torch.equal(a[name], b[name])
    assert any(not torch.equal(a[k], c[k]) for k in shapes)


def test_random_masks_are_spread_uniformly():
    # 4000 draws of 5 of 20 positions: every position is picked ~1000 times (sd ~27).
    g = torch.Generator().manual_seed(0)
    hits = sum(random_masks({"w": (20,)}, {"w": 5}, g)["w"].long() for _ in range(4000))
    assert hits.sum() == 20000
    assert (hits - 1000).abs().max() < 150


# --- schedules --------------------------------------------------------------------------------


def test_schedule_update_steps():
    schedule = UpdateSchedule(update_every=3, end_step=10, drop_fraction=0.3)
    assert [s for s in range(0, 20) if schedule.is_update_step(s)] == [3, 6, 9]


def test_schedule_fractions():
    cosine = UpdateSchedule(update_every=1, end_step=100, drop_fraction=0.5, decay="cosine", final_fraction=0.1)
    assert cosine.fraction(0) == pytest.approx(0.5)
    assert cosine.fraction(50) == pytest.approx(0.3)
    assert cosine.fraction(25) == pytest.approx(0.1 + 0.4 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine.fraction(100) == pytest.approx(0.1)
    assert cosine.fraction(150) == pytest.approx(0.1)
    constant = UpdateSchedule(update_every=1, end_step=100, drop_fraction=0.5, decay="constant")
    assert constant.fraction(0) == constant.fraction(99) == 0.5


@pytest.mark.parametrize("kwargs, field", [
    (dict(update_every=0), "update_every"), (dict(end_step=-1), "end_step"), (dict(drop_fraction=1.5), "drop_fraction"),
    (dict(decay="linear"), "decay"), (dict(final_fraction=-0.1), "final_fraction"),
])
def test_schedule_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        UpdateSchedule(**{**dict(update_every=10, end_step=100, drop_fraction=0.3), **kwargs})


# --- scorers ----------------------------------------------------------------------------------


def test_drop_by_magnitude_removes_smallest_connected_with_index_ties():
    weight = torch.tensor([[0.5, -0.1, 0.3], [0.1, 2.0, -0.3], [0.0, 0.05, 1.0]])
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[2, 0] = mask[2, 1] = False  # the two smallest weights are not connected: never candidates
    kept = drop_by_magnitude(weight, mask, 3)
    expected = mask.clone()
    expected[0, 1] = expected[1, 0] = expected[0, 2] = False  # |0.1| tie: both; |0.3| tie: lower index
    assert torch.equal(kept, expected)
    assert torch.equal(mask, torch.tensor([[1, 1, 1], [1, 1, 1], [0, 0, 1]], dtype=torch.bool))  # input intact
    with pytest.raises(ValueError, match="cannot drop 8 of 7"):
        drop_by_magnitude(weight, mask, 8)


def test_grow_takes_highest_scores_among_allowed_candidates():
    scores = torch.tensor([9.0, 1.0, 5.0, 5.0, 7.0, 3.0])
    mask = torch.tensor([1, 0, 0, 0, 0, 0], dtype=torch.bool)
    forbidden = torch.tensor([0, 0, 0, 0, 1, 0], dtype=torch.bool)
    new, grown = grow(scores, mask, 2, forbidden)
    assert torch.equal(grown, torch.tensor([0, 0, 1, 1, 0, 0], dtype=torch.bool))
    assert torch.equal(new, mask | grown)
    _, grown = grow(scores, mask, 1, forbidden)
    assert torch.equal(grown, torch.tensor([0, 0, 1, 0, 0, 0], dtype=torch.bool))  # tie: lower index
    _, grown = grow(scores, mask, 10, forbidden)
    assert int(grown.sum()) == 4 and not (grown & (mask | forbidden)).any()


def test_score_makers():
    grad = torch.tensor([[-3.0, 2.0], [0.0, -0.5]])
    assert torch.equal(gradient_scores(grad), grad.abs())
    g = torch.Generator().manual_seed(0)
    scores = random_scores((3, 4), g)
    assert scores.shape == (3, 4) and ((scores >= 0) & (scores < 1)).all()
    union = torch.zeros(40, dtype=torch.bool)
    union[:30] = True
    unfired = unfired_scores(union, g)
    assert unfired[30:].min() > unfired[:30].max()
    _, grown = grow(unfired, torch.zeros(40, dtype=torch.bool), 10)
    assert torch.equal(grown, ~union)


# --- engine: masks and optimizer state under training ----------------------------------------


@pytest.mark.parametrize("distribution", ["erk", "uniform"])
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_init_on_vgg_has_exact_counts_and_zero_masked_weights(sparsity, distribution):
    model = build_model("vgg16", 10, width=0.125)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sparsifier = Sparsifier(model, optimizer, sparsity=sparsity, distribution=distribution)
    params = maskable_parameters(model)
    counts = layer_counts({k: p.shape for k, p in params.items()}, sparsity, distribution)
    for name, p in params.items():
        mask = sparsifier.masks[name]
        assert int(mask.sum()) == counts[name]
        assert (p[~mask] == 0).all()
    total = sum(p.numel() for p in params.values())
    metrics = sparsifier.metrics()
    assert metrics["density"] == sum(counts.values()) / total
    assert metrics["itop_rate"] == metrics["density"] and metrics["mask_change"] == 0.0


class CheckedDynamicSparsity(DynamicSparsity):
    """Checks, inside every update, that newly grown weights and their optimizer state are 0."""

    fresh_counts: list

    @torch.no_grad()
    def update_masks(self):
        before = {k: self.masks[k].clone() for k in self.params}
        super().update_masks()
        fresh_total = 0
        for name, p in self.params.items():
            fresh = self.masks[name] & ~before[name]
            assert (p[fresh] == 0).all()
            for value in self.optimizer.state[p].values():
                if isinstance(value, torch.Tensor) and value.shape == p.shape:
                    assert (value[fresh] == 0).all()
            fresh_total += int(fresh.sum())
        assert self.masks.last_change == fresh_total / self.masks.nnz()
        self.fresh_counts = getattr(self, "fresh_counts", []) + [fresh_total]


@pytest.mark.parametrize("growth", GROWTHS)
@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw-amsgrad"])
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_training_keeps_every_invariant(sparsity, opt, growth):
    model = tiny_conv()
    optimizer = make_optimizer(opt, model.parameters())
    schedule = UpdateSchedule(update_every=2, end_step=100, drop_fraction=0.5)
    sparsifier = CheckedDynamicSparsity(model, optimizer, sparsity=sparsity, schedule=schedule, growth=growth)
    params = sparsifier.params
    counts = layer_counts({k: p.shape for k, p in params.items()}, sparsity)
    seen_grads = []

    def check_grads(optimizer, args, kwargs):  # registered after the sparsifier's: sees what the step uses
        seen_grads.append(all((p.grad[~sparsifier.masks[k]] == 0).all() for k, p in params.items()))

    optimizer.register_step_pre_hook(check_grads)
    itop = [sparsifier.metrics()["itop_rate"]]
    assert itop[0] == sparsifier.metrics()["density"]
    for step in range(9):
        mask_at_step = {k: sparsifier.masks[k].clone() for k in params}
        train_step(model, optimizer, step)
        for name, p in params.items():
            mask = sparsifier.masks[name]
            assert int(mask.sum()) == counts[name], name
            assert (p[~mask] == 0).all()
            assert (p.grad[~mask_at_step[name]] == 0).all()
            for state_name in ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                value = optimizer.state[p].get(state_name)
                if value is not None:
                    assert (value[~mask] == 0).all(), state_name
        itop.append(sparsifier.metrics()["itop_rate"])
    assert all(seen_grads) and len(seen_grads) == 9
    assert sparsifier.step == 9 and len(sparsifier.fresh_counts) == 4 and sparsifier.masks.updates == 4
    assert all(a <= b for a, b in zip(itop, itop[1:])) and itop[-1] <= 1
    assert sum(sparsifier.fresh_counts) > 0 and itop[-1] > itop[0]


def single_layer(weight, mask, **kwargs):
    """A bias-free Linear with the given weight and mask, trained with lr 0 so weights stay put."""
    model = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        model.weight.copy_(weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    schedule = UpdateSchedule(update_every=1, end_step=10, drop_fraction=0.5, decay="constant")
    sparsifier = DynamicSparsity(model, optimizer, masks=MaskState({"weight": mask}), schedule=schedule, **kwargs)
    return model, optimizer, sparsifier


WEIGHT = torch.tensor([[0.01, 5.0, 0.0, 0.0], [4.0, 0.02, 0.0, 0.0]])
MASK = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
# The two smallest connected weights (0.01, 0.02) have the largest gradients.
GRAD = torch.tensor([[9.0, 0.1, 3.0, -1.0], [0.2, -8.0, 0.5, -2.0]])


def test_gradient_growth_picks_the_highest_gradients_and_never_regrows_dropped():
    model, optimizer, sparsifier = single_layer(WEIGHT, MASK, growth="gradient")
    model.weight.grad = GRAD.clone()
    optimizer.step()
    # dropped: (0,0), (1,1); grown among never-connected positions: |3.0| at (0,2) and |-2.0| at (1,3)
    expected = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 1]], dtype=torch.bool)
    assert torch.equal(sparsifier.masks["weight"], expected)
    assert torch.equal(model.weight.detach(), torch.tensor([[0.0, 5.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0]]))
    assert sparsifier.metrics()["mask_change"] == 0.5
    assert sparsifier.metrics()["itop_rate"] == 6 / 8


def test_allow_regrow_lets_dropped_weights_come_back_unchanged():
    model, optimizer, sparsifier = single_layer(WEIGHT, MASK, growth="gradient", allow_regrow=True)
    model.weight.grad = GRAD.clone()
    optimizer.step()
    assert torch.equal(sparsifier.masks["weight"], MASK)
    assert torch.equal(model.weight.detach(), WEIGHT)
    assert sparsifier.metrics()["mask_change"] == 0.0


def test_recorded_dense_gradients_drive_gradient_growth_but_not_optimizer_gradient_growth():
    raw = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    corrected = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    for growth, expected_new in (("gradient", raw), ("optimizer-gradient", corrected)):
        model, optimizer, sparsifier = single_layer(WEIGHT, MASK, growth=growth)
        sparsifier.record_dense_gradients({"weight": raw, "other.bias": torch.zeros(1)})  # extra names are ignored
        model.weight.grad = corrected.clone()
        optimizer.step()
        fresh = sparsifier.masks["weight"] & ~MASK
        assert torch.equal(fresh, expected_new.bool()), growth


def test_corrected_gradient_growth_scores_the_recorded_corrected_gradients_and_needs_them():
    raw = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    corrected = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    model, optimizer, sparsifier = single_layer(WEIGHT, MASK, growth="corrected-gradient")
    sparsifier.record_dense_gradients({"weight": raw})
    sparsifier.record_corrected_gradients({"weight": corrected})
    model.weight.grad = raw.clone()  # what the step is handed does not count
    optimizer.step()
    assert torch.equal(sparsifier.masks["weight"] & ~MASK, corrected.bool())
    model, optimizer, sparsifier = single_layer(WEIGHT, MASK, growth="corrected-gradient")
    model.weight.grad = raw.clone()
    with pytest.raises(RuntimeError, match="growth 'corrected-gradient' scores a gradient corrector's"):
        optimizer.step()
    with pytest.raises(ValueError, match=r"grads: missing the maskable weights \['weight'\]"):
        sparsifier.record_corrected_gradients({})


def test_record_dense_gradients_is_only_kept_for_update_steps_and_checks_names():
    model = tiny_conv()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = UpdateSchedule(update_every=3, end_step=100, drop_fraction=0.3)
    sparsifier = DynamicSparsity(model, optimizer, sparsity=0.9, schedule=schedule, growth="gradient")
    sparsifier.record_dense_gradients({})  # step 1 is no update step: ignored, nothing checked
    assert sparsifier._recorded is None
    train_step(model, optimizer, 0)
    train_step(model, optimizer, 1)
    with pytest.raises(ValueError, match="missing the maskable weights"):
        sparsifier.record_dense_gradients({})


def test_skip_step_on_update_leaves_weights_untouched_by_the_optimizer():
    model = tiny_conv()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    schedule = UpdateSchedule(update_every=3, end_step=100, drop_fraction=0.3)
    sparsifier = DynamicSparsity(model, optimizer, sparsity=0.8, schedule=schedule, growth="gradient",
                                 skip_step_on_update=True)
    for step in range(7):
        before = {k: p.detach().clone() for k, p in model.named_parameters()}
        old_masks = {k: sparsifier.masks[k].clone() for k in sparsifier.params}
        adam_steps = [float(optimizer.state[p]["step"]) if p in optimizer.state else 0.0 for p in model.parameters()]
        train_step(model, optimizer, step)
        after = dict(model.named_parameters())
        if sparsifier.step % 3 == 0:
            assert sparsifier.masks.last_change > 0
            for name, p in after.items():
                if name in sparsifier.params:
                    kept = old_masks[name] & sparsifier.masks[name]
                    assert torch.equal(p[kept], before[name][kept])
                    assert (p[~kept] == 0).all()
                else:
                    assert torch.equal(p, before[name])
            assert adam_steps == [float(optimizer.state[p]["step"]) for p in model.parameters()]
        else:
            assert not torch.equal(after["0.bias"], before["0.bias"])


@pytest.mark.parametrize("growth", ["gradient", "random", "random-unfired"])
def test_save_and_load_mid_training_reproduces_training_exactly(growth):
    def build(model_seed, sparsifier_seed):
        model = tiny_conv(model_seed)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        schedule = UpdateSchedule(update_every=2, end_step=100, drop_fraction=0.3)
        sparsifier = DynamicSparsity(model, optimizer, sparsity=0.9, schedule=schedule, growth=growth,
                                     seed=sparsifier_seed)
        return model, optimizer, sparsifier

    k = 5
    model, optimizer, sparsifier = build(0, 0)
    for step in range(k):
        train_step(model, optimizer, step)
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict(), sparsifier.state_dict()))
    for step in range(k, 2 * k):
        train_step(model, optimizer, step)

    model2, optimizer2, sparsifier2 = build(1, 1)
    model2.load_state_dict(saved[0])
    optimizer2.load_state_dict(saved[1])
    sparsifier2.load_state_dict(saved[2])
    for step in range(k, 2 * k):
        train_step(model2, optimizer2, step)

    assert sparsifier.masks.updates == sparsifier2.masks.updates == 5  # steps 2, 4, ..., 10
    assert sparsifier2.step == 2 * k
    for name in sparsifier.params:
        assert torch.equal(sparsifier.masks[name], sparsifier2.masks[name])
        assert torch.equal(sparsifier.masks.union[name], sparsifier2.masks.union[name])
    for (name, p), p2 in zip(model.named_parameters(), model2.parameters()):
        assert torch.equal(p, p2), name
    # The checkpoint itself is not altered by the restored run.
    assert saved[2]["masks"]["union"]["0.weight"].sum() < sparsifier2.masks.union["0.weight"].sum()


def test_global_rng_is_never_consumed():
    model = tiny_conv()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for growth in ("random", "random-unfired"):
        rng = torch.get_rng_state()
        schedule = UpdateSchedule(update_every=1, end_step=100, drop_fraction=0.3)
        sparsifier = DynamicSparsity(model, optimizer, sparsity=0.9, schedule=schedule, growth=growth)
        assert torch.equal(torch.get_rng_state(), rng)
        for step in range(3):
            x, y = batch(step)
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            rng = torch.get_rng_state()
            optimizer.step()
            assert torch.equal(torch.get_rng_state(), rng)
        assert sparsifier.masks.updates == 3
        sparsifier.remove()


def test_remove_stops_enforcing_masks():
    model = tiny_conv()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sparsifier = Sparsifier(model, optimizer, sparsity=0.9)
    sparsifier.remove()
    train_step(model, optimizer, 0)
    assert (model[2].weight[~sparsifier.masks["2.weight"]] != 0).any()


def test_static_sparsifier_never_changes_masks():
    model = tiny_conv()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sparsifier = Sparsifier(model, optimizer, sparsity=0.9, dense_layers="first-last")
    assert set(sparsifier.params) == {"2.weight", "6.weight"}
    masks = {k: sparsifier.masks[k].clone() for k in sparsifier.params}
    for step in range(4):
        train_step(model, optimizer, step)
    assert all(torch.equal(masks[k], sparsifier.masks[k]) for k in masks)
    assert (model[0].weight != 0).all()  # the dense first layer
    assert sparsifier.metrics()["itop_rate"] == sparsifier.metrics()["density"]


# --- engine: errors ---------------------------------------------------------------------------


class PlainSGD(torch.optim.Optimizer):
    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


def test_unregistered_optimizer_raises_with_registration_hint():
    model = tiny_conv()
    with pytest.raises(UnknownOptimizerStateError, match=r"register_optimizer_state\(PlainSGD"):
        Sparsifier(model, PlainSGD(model.parameters()), sparsity=0.9)
    register_optimizer_state(PlainSGD, [])
    try:
        Sparsifier(model, PlainSGD(model.parameters()), sparsity=0.9)
    finally:
        _REGISTRY.pop(PlainSGD)


def test_argument_errors_name_the_argument():
    model = tiny_conv()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = UpdateSchedule(update_every=2, end_step=10, drop_fraction=0.3)
    with pytest.raises(ValueError, match=r"growth: 'magic'.*random, gradient, random-unfired, optimizer-gradient"):
        DynamicSparsity(model, optimizer, sparsity=0.9, schedule=schedule, growth="magic")
    with pytest.raises(ValueError, match="sparsity: required"):
        Sparsifier(model, optimizer)
    with pytest.raises(ValueError, match="dense_layers"):
        Sparsifier(model, optimizer, sparsity=0.9, dense_layers="middle")
    with pytest.raises(ValueError, match="optimizer: it does not update"):
        Sparsifier(model, torch.optim.SGD(model[0].parameters(), lr=0.1), sparsity=0.9)
    with pytest.raises(ValueError, match="masks: names"):
        Sparsifier(model, optimizer, masks=MaskState({"0.weight": torch.ones(8, 3, 3, 3, dtype=torch.bool)}))
    sparsifier = Sparsifier(model, optimizer, sparsity=0.9)
    with pytest.raises(RuntimeError, match="closure"):
        optimizer.step(lambda: 0.0)
    sparsifier.remove()


# --- N:M --------------------------------------------------------------------------------------


def test_nm_masks_keep_the_largest_of_every_group():
    g = torch.Generator().manual_seed(0)
    params = {"fc": torch.randn(5, 16, generator=g), "conv": torch.randn(4, 8, 3, 3, generator=g)}
    masks = nm_masks(params, 2, 4)
    for name, mask in masks.items():
        check_nm(mask, 2, 4)
        assert mask.shape == params[name].shape and int(mask.sum()) == mask.numel() // 2
    fc, mask = params["fc"].abs(), masks["fc"]
    for row in range(5):
        for group in range(4):
            w, m = fc[row, 4 * group:4 * group + 4], mask[row, 4 * group:4 * group + 4]
            assert int(m.sum()) == 2 and w[m].min() >= w[~m].max()
    conv, mask = params["conv"].abs(), masks["conv"]
    for out in range(4):
        for kh in range(3):
            for kw in range(3):
                for group in range(2):
                    w = conv[out, 4 * group:4 * group + 4, kh, kw]
                    m = mask[out, 4 * group:4 * group + 4, kh, kw]
                    assert int(m.sum()) == 2 and w[m].min() >= w[~m].max()


def test_nm_ties_keep_lower_inputs_and_errors():
    mask = nm_masks({"fc": torch.ones(1, 8)}, 1, 4)["fc"]
    assert torch.equal(mask, torch.tensor([[1, 0, 0, 0, 1, 0, 0, 0]], dtype=torch.bool))
    with pytest.raises(ValueError, match=r"layer 'head': its 6 inputs are not divisible by m=4"):
        nm_masks({"head": torch.ones(2, 6)}, 2, 4)
    with pytest.raises(ValueError, match="n: 5"):
        nm_masks({"fc": torch.ones(2, 8)}, 5, 4)
    bad = torch.tensor([[1, 1, 1, 0, 1, 1, 0, 0]], dtype=torch.bool)
    with pytest.raises(ValueError, match="1 of 2 groups"):
        check_nm(bad, 2, 4)
    check_nm(torch.tensor([[1, 0, 0, 0, 1, 1, 0, 0]], dtype=torch.bool), 2, 4, exact=False)


def test_static_nm_training_keeps_the_pattern():
    model = tiny_conv()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    params = maskable_parameters(model, "first")
    sparsifier = Sparsifier(model, optimizer, sparsity=0.5, dense_layers="first", masks=MaskState(nm_masks(params, 2, 4)))
    for step in range(3):
        train_step(model, optimizer, step)
    for name, p in params.items():
        check_nm(sparsifier.masks[name], 2, 4)
        check_nm(p != 0, 2, 4, exact=False)
    with pytest.raises(ValueError, match="sparsity: 0.9 disagrees"):
        Sparsifier(model, optimizer, sparsity=0.9, dense_layers="first", masks=MaskState(nm_masks(params, 2, 4)))
