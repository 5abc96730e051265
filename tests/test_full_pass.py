"""Full-data passes on class-sorted data: shuffled, seeded, at the training batch size, replayed on resume.

``cifar10-mini`` (and every stratified subset of it) is stored sorted by class: read in storage
order, each batch of a pass holds almost one class. These tests run on it and check that AGENT's
refresh and ``diagnose_run`` draw class-mixed batches whose gradients are those of the pass, and
that class-sorted batches handed to the corrector or the diagnostics are flagged.
"""
from __future__ import annotations

import copy
import json
import warnings

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import agent_lab.experiments.diagnose as checkpoint_module
from agent_lab import RunConfig, train
from agent_lab.data import ClassMixing, ClassSortedBatchesWarning, InMemoryLoader, full_pass_loader
from agent_lab.diagnostics import full_gradient, gradient_correlation, gradient_variance, loss_based_c_star
from agent_lab.experiments import diagnose_run
from agent_lab.hooks import Batch
from agent_lab.optim.agent import GradientCorrector
from agent_lab.train import load_bundle, prepare

SORTED = RunConfig(dataset="cifar10-mini", train_subset=512, test_subset=100, model="vgg16", width=0.125,
                   batch_size=64, epochs=3, lr=0.05, lr_schedule="constant", optimizer="agent", device="cpu", seed=2)
WALL_CLOCK = ["wall_time", "eval_time"]
# Ten balanced classes in batches of 64: a random permutation gives a majority share of about
# 0.2 (0.3 is beyond any pass seen here); storage order (51 examples per class) gives 0.58-0.81.
RANDOM_MAJORITY_BOUND = 0.35


def majority_shares(label_batches) -> list[float]:
    return [float(torch.bincount(y).max()) / len(y) for y in label_batches]


@pytest.fixture(scope="module")
def sorted_data():
    bundle = load_bundle(SORTED)
    return bundle.train.images, bundle.train.labels


def test_the_bundled_subset_is_stored_sorted_by_class(sorted_data):
    """The premise of this file: storage order puts one class in every batch."""
    _, labels = sorted_data
    natural = [labels[i:i + 64] for i in range(0, len(labels), 64)]
    shares = majority_shares(natural)
    assert min(shares) > 0.5 and sum(shares) / len(shares) > 0.65 > 2 * RANDOM_MAJORITY_BOUND - 0.05


# ------------------------------------------------------------------ the loader and the check

def test_full_pass_loader_covers_every_example_once_in_a_seeded_order(sorted_data):
    images, labels = sorted_data
    loader = full_pass_loader(images, labels, 64, seed=2)
    first = [y for _, y in loader.epoch(7)]
    again = [y for _, y in full_pass_loader(images, labels, 64, seed=2).epoch(7)]
    other_key = [y for _, y in loader.epoch(8)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # a pure function of (seed, key)
    assert not all(torch.equal(a, b) for a, b in zip(first, other_key))
    assert torch.equal(torch.sort(torch.cat(first)).values, torch.sort(labels).values)
    assert max(majority_shares(first)) < RANDOM_MAJORITY_BOUND
    # its own random stream: not the order of the training epoch with the same index
    train_order = [y for _, y in InMemoryLoader(images, labels, 64, augment=False, seed=2).epoch(7)]
    assert not all(torch.equal(a, b) for a, b in zip(first, train_order))


def test_full_pass_loader_refuses_an_unknown_stream(sorted_data):
    images, labels = sorted_data
    with pytest.raises(ValueError, match="stream: 'test' is invalid; valid choices: train, full-pass"):
        InMemoryLoader(images, labels, 64, stream="test")


def test_class_mixing_tells_sorted_from_shuffled_passes():
    labels = torch.arange(10).repeat_interleave(100)
    sorted_pass, shuffled_pass = ClassMixing(), ClassMixing()
    permuted = labels[torch.randperm(1000, generator=torch.Generator().manual_seed(0))]
    for i in range(0, 1000, 64):
        sorted_pass.update(labels[i:i + 64])
        shuffled_pass.update(permuted[i:i + 64])
    assert sorted_pass.sorted_by_class() and not shuffled_pass.sorted_by_class()
    # imbalanced but shuffled data is not flagged; regression targets and tiny batches are ignored
    skewed = ClassMixing()
    skewed_labels = torch.cat([torch.zeros(800, dtype=torch.long), torch.ones(200, dtype=torch.long)])
    skewed_labels = skewed_labels[torch.randperm(1000, generator=torch.Generator().manual_seed(1))]
    for i in range(0, 1000, 32):
        skewed.update(skewed_labels[i:i + 32])
    assert not skewed.sorted_by_class()
    ignored = ClassMixing()
    for i in range(5):
        ignored.update(torch.randn(64))
        ignored.update(torch.full((8,), i))
    assert not ignored.sorted_by_class() and ignored.majority_shares == []


# ------------------------------------------------------------------ AGENT's refresh in the loop

def refresh_once(config: RunConfig, step: int):
    """Run the correction callback's refresh at ``step``; returns (trainer, model before, batches)."""
    trainer, _ = prepare(config)
    correction = next(cb for cb in trainer.callbacks if cb.name == "correction")
    before = copy.deepcopy(trainer.model)
    seen = []
    original = correction.corrector.refresh

    def recording_refresh(batches, loss_fn):
        batches = [(x.clone(), y.clone()) for x, y in batches]
        seen.extend(batches)
        return original(batches, loss_fn)

    correction.corrector.refresh = recording_refresh
    trainer.state.step = step
    x, y = trainer.train_loader.batch(0, 0)
    correction.before_optimizer_step(trainer, Batch(x, y, 0, 0))
    return trainer, correction, before, seen


@pytest.mark.parametrize("augment", [True, False])
def test_refresh_full_gradient_is_the_mean_over_a_class_mixed_shuffled_pass(sorted_data, augment):
    images, labels = sorted_data
    config = SORTED.replace(full_pass_augment=augment)
    step = 16  # a refresh step (one epoch is 8 steps); the pass is keyed by it
    trainer, correction, before, seen = refresh_once(config, step)

    # batches of the training batch size, class-mixed, every example once
    assert [len(y) for _, y in seen] == [64] * 8
    assert max(majority_shares([y for _, y in seen])) < RANDOM_MAJORITY_BOUND
    assert torch.equal(torch.sort(torch.cat([y for _, y in seen])).values, torch.sort(labels).values)
    # exactly the pass full_pass_loader draws from the run's seed and the step (replayable)
    replay = full_pass_loader(images, labels, 64, seed=config.seed, augment=augment).epoch(step)
    for (x, y), (x_ref, y_ref) in zip(seen, replay):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
    # per-image pixel sums: equal to the stored images' for clean passes; zero-padded shifts change them
    seen_sums = torch.sort(torch.cat([x for x, _ in seen]).mul(255).round().to(torch.int64).flatten(1).sum(1)).values
    stored_sums = torch.sort(images.to(torch.int64).flatten(1).sum(1)).values
    assert torch.equal(seen_sums, stored_sums) != augment

    # g̃ = Σ_b n_b ∇L_b / N over those batches, against a float64 reference in train mode
    reference = before.double().train()
    total = [torch.zeros_like(p) for p in reference.parameters()]
    for x, y in seen:
        loss = F.cross_entropy(reference(x.double()), y)
        for acc, g in zip(total, torch.autograd.grad(loss, list(reference.parameters()))):
            acc.add_(g, alpha=len(y) / len(labels))
    g_tilde, _ = correction.corrector.full_gradient_state()
    flat = lambda ts: torch.cat([t.double().flatten() for t in ts])  # noqa: E731
    # float32 through 13 BN conv layers: ~2e-4 relative to the float64 value (the float32 replay is exact)
    assert (flat(g_tilde) - flat(total)).norm() < 1e-3 * flat(total).norm()
    # ... which is not the gradient of storage-order batches (the bias the shuffled pass removes)
    natural = [(images[i:i + 64].double() / 255, labels[i:i + 64]) for i in range(0, len(labels), 64)]
    biased = [torch.zeros_like(p) for p in reference.parameters()]
    for x, y in natural:
        loss = F.cross_entropy(reference(x), y)
        for acc, g in zip(biased, torch.autograd.grad(loss, list(reference.parameters()))):
            acc.add_(g, alpha=len(y) / len(labels))
    assert (flat(biased) - flat(total)).norm() > 0.2 * flat(total).norm()


def test_the_refresh_leaves_the_training_stream_and_bn_buffers_alone(sorted_data):
    trainer, _, before, _ = refresh_once(SORTED, 0)
    for (name, a), b in zip(trainer.model.state_dict().items(), before.state_dict().values()):
        assert torch.equal(a, b), name


def test_resumed_agent_run_on_sorted_data_replays_its_full_passes_exactly(tmp_path):
    config = SORTED.replace(train_subset=256, batch_size=32, pipeline="rigl", sparsity=0.9, update_every=4)
    straight = train(config, out=tmp_path / "a", progress=False)
    train(config, out=tmp_path / "b", progress=False, stop_after_epoch=1)
    resumed = train(config, out=tmp_path / "b", progress=False)
    assert straight.history["c_hat_star"].notna().sum() == 2
    pd.testing.assert_frame_equal(resumed.history.drop(columns=WALL_CLOCK),
                                  straight.history.drop(columns=WALL_CLOCK), check_exact=True)
    a = torch.load(straight.run_dir / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(resumed.run_dir / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ user batches are checked

def tiny_classifier():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))


def sorted_and_shuffled_batches():
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat_interleave(32)
    x = torch.randn(320, 12, generator=generator) + y[:, None] * 0.1
    perm = torch.randperm(320, generator=generator)
    sorted_batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 320, 32)]
    shuffled = [(x[perm[i:i + 32]], y[perm[i:i + 32]]) for i in range(0, 320, 32)]
    return sorted_batches, shuffled


def ce(model, x, y):
    return F.cross_entropy(model(x), y)


DIAGNOSTICS = {
    "full_gradient": lambda m, s, b: full_gradient(m, b),
    "gradient_correlation": lambda m, s, b: gradient_correlation(m, b, replicates=1),
    "gradient_variance": lambda m, s, b: gradient_variance(m, b),
    "loss_based_c_star": lambda m, s, b: loss_based_c_star(m, s, b),
}


@pytest.mark.parametrize("name", sorted(DIAGNOSTICS))
def test_diagnostics_warn_on_class_sorted_batches(name):
    model = tiny_classifier()
    snapshot = copy.deepcopy(model)
    sorted_batches, shuffled = sorted_and_shuffled_batches()
    with pytest.warns(ClassSortedBatchesWarning, match=name):
        DIAGNOSTICS[name](model, snapshot, sorted_batches)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClassSortedBatchesWarning)
        DIAGNOSTICS[name](model, snapshot, shuffled)


def test_corrector_refresh_warns_on_class_sorted_batches():
    model = tiny_classifier()
    corrector = GradientCorrector(model)
    sorted_batches, shuffled = sorted_and_shuffled_batches()
    with pytest.warns(ClassSortedBatchesWarning, match="GradientCorrector.refresh"):
        corrector.refresh(sorted_batches, ce)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClassSortedBatchesWarning)
        corrector.refresh(shuffled, ce)


# ------------------------------------------------------------------ diagnose_run

@pytest.fixture(scope="module")
def sorted_run(tmp_path_factory):
    config = SORTED.replace(optimizer="sgd", epochs=1, pipeline="static", sparsity=0.5)
    return train(config, out=tmp_path_factory.mktemp("runs"), progress=False)


def test_diagnose_run_measures_on_class_mixed_batches_of_the_training_size(sorted_run, sorted_data, monkeypatch):
    images, labels = sorted_data
    seen: dict[str, list] = {}

    def spy(name, real):
        def wrapped(model, batches, **kwargs):
            batches = [(x.clone(), y.clone()) for x, y in (batches() if callable(batches) else batches)]
            seen[name] = batches
            seen[name + "_value"] = real(model, batches, **kwargs)
            return seen[name + "_value"]
        return wrapped

    monkeypatch.setattr(checkpoint_module, "gradient_correlation", spy("correlation", gradient_correlation))
    monkeypatch.setattr(checkpoint_module, "gradient_variance", spy("variance", gradient_variance))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClassSortedBatchesWarning)
        table = diagnose_run(sorted_run.run_dir, batches=4, replicates=2, seed=3, device="cpu", save=False)

    correlation = seen["correlation"]
    assert [len(y) for _, y in correlation] == [64] * 8  # the run's batch size, not eval_batch_size
    assert max(majority_shares([y for _, y in correlation])) < RANDOM_MAJORITY_BOUND
    assert torch.equal(torch.sort(torch.cat([y for _, y in correlation])).values, torch.sort(labels).values)
    replay = list(full_pass_loader(images, labels, 64, seed=SORTED.seed).epoch(3))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(correlation, replay))
    assert [len(y) for _, y in seen["variance"]] == [64] * 4
    assert max(majority_shares([y for _, y in seen["variance"]])) < RANDOM_MAJORITY_BOUND
    value = table.set_index("metric").loc["grad_corr", "value"]
    assert value == seen["correlation_value"].mean
    assert bool(table["active_only"].eq(False).all()) and bool(table["augment"].eq(False).all())


def test_diagnose_run_augment_option_draws_augmented_passes_and_keeps_its_own_summary(sorted_run, monkeypatch):
    seen = {}

    def spy(model, batches, **kwargs):
        seen["batches"] = [(x.clone(), y.clone()) for x, y in batches()]
        return gradient_correlation(model, seen["batches"], **kwargs)

    monkeypatch.setattr(checkpoint_module, "gradient_correlation", spy)
    table = diagnose_run(sorted_run.run_dir, "correlation", replicates=1, augment=True, device="cpu")
    images, labels = load_bundle(SORTED).train.images, load_bundle(SORTED).train.labels
    clean = list(full_pass_loader(images, labels, 64, seed=SORTED.seed).epoch(0))
    augmented = list(full_pass_loader(images, labels, 64, seed=SORTED.seed, augment=True).epoch(0))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(seen["batches"], augmented))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(seen["batches"], clean))
    assert bool(table["augment"].iloc[0])
    stored = json.loads((sorted_run.run_dir / "diagnostics.json").read_text())
    assert "grad_corr_sigma0.015_r1_augmented" in stored
    with pytest.raises(ValueError, match="augment: 'yes' is invalid"):
        diagnose_run(sorted_run.run_dir, "correlation", augment="yes", device="cpu")
