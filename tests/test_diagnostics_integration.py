"""Diagnostics wired into training (``RunConfig.diagnostics``), into stored runs (``diagnose_run``)
and into the command line (``agent-lab diagnose``).

Every run here is tiny: the synthetic data set cut to 256 training images (4 steps of 64 per
epoch), VGG-16 at width 0.125, on the CPU.
"""
from __future__ import annotations

import copy
import hashlib
import importlib
import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from agent_lab.diagnostics import plot_c_hat_vs_correlation, variance_vs_c
from agent_lab.experiments import snapshot_of_run
from agent_lab.reporting import plot_history_columns
from agent_lab import ConfigError, RunConfig, load_run, train
from agent_lab.cli import main
from agent_lab.config import CHOICES, CORRECTOR_RULES
from agent_lab.data import full_pass_loader, load_dataset
from agent_lab.build import checkpoint_masks as run_masks
from agent_lab.experiments.diagnose import SUMMARY_FILE, diagnose_run
from agent_lab.diagnostics.in_training import DIAGNOSTICS, DiagnosticsCallback
from agent_lab.optim.agent import GradientCorrector
from agent_lab.runs import CHECKPOINT_FILE, load_checkpoint, read_json, save_checkpoint, write_json

train_module = importlib.import_module("agent_lab.train")  # the package attribute `train` is the function

BATCH = 64
STEPS = 4   # 256 training images / 64
K = 3       # diagnostics_batches
BASE = RunConfig(dataset="synthetic", model="vgg16", width=0.125, epochs=3, batch_size=BATCH, lr=0.05,
                 lr_schedule="step", lr_milestones=(0.5,), lr_factors=(0.1,), device="cpu", seed=3,
                 train_subset=STEPS * BATCH, test_subset=64, diagnostics_batches=K)
# RigL with a mask update every 2 optimizer steps: the masks change inside every epoch.
AGENT_RIGL = BASE.replace(optimizer="agent", pipeline="rigl", sparsity=0.9, update_every=2)
SGD_DENSE = BASE.replace(epochs=2)

RUN_COLUMNS = ["train_loss", "train_acc", "test_loss", "test_acc", "lr", "fwd_bwd", "density"]
TIMING_COLUMNS = ["wall_time", "eval_time"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _one_thread_per_test():
    torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------
# Recording a run: the full gradients right after each refresh, the state at each variance
# measurement and the trainer itself (class-level wrappers that only read and copy).
# ------------------------------------------------------------------------------------------------

@dataclass
class Recorded:
    result: Any
    trainer: Any
    refreshes: list      # [(g̃, correctable masks, θ̃ before the refresh, the pass's batches)] per refresh
    captures: list       # one dict per variance measurement


def train_recorded(config: RunConfig, out: Path, **kwargs) -> Recorded:
    refreshes: list = []
    captures: list = []
    trainers: list = []
    original_refresh = GradientCorrector.refresh
    original_measure = DiagnosticsCallback._measure_variance
    original_run = train_module.Trainer.run

    def refresh(self, batches, *args, **kw):
        batches = [(x.clone(), y.clone()) for x, y in batches]
        snapshot = None if self.snapshot_model is None else copy.deepcopy(self.snapshot_model)
        report = original_refresh(self, batches, *args, **kw)
        refreshes.append(([g.detach().clone() for g in self._full_grad], [m.clone() for m in self._correctable],
                          snapshot, batches))
        return report

    def measure(self, trainer, epoch):
        snapshot = None if self.corrector is None else self.corrector.snapshot_model
        captures.append({
            "epoch": epoch, "step": trainer.state.step, "model": copy.deepcopy(trainer.model),
            "snapshot": None if snapshot is None else copy.deepcopy(snapshot),
            "masks": None if self.sparsifier is None else {n: m.clone() for n, m in self.sparsifier.masks.masks.items()},
        })
        return original_measure(self, trainer, epoch)

    def run(self, *args, **kw):
        trainers.append(self)
        return original_run(self, *args, **kw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GradientCorrector, "refresh", refresh)
        patch.setattr(DiagnosticsCallback, "_measure_variance", measure)
        patch.setattr(train_module.Trainer, "run", run)
        result = train(config, out=out, progress=False, **kwargs)
    return Recorded(result, trainers[-1] if trainers else None, refreshes, captures)


@pytest.fixture(scope="module")
def agent_runs(tmp_path_factory) -> dict[str, Recorded]:
    out = tmp_path_factory.mktemp("agent")
    return {what: train_recorded(AGENT_RIGL.replace(diagnostics=what), out / what) for what in ("none", "all")}


@pytest.fixture(scope="module")
def sgd_runs(tmp_path_factory) -> dict[str, Recorded]:
    out = tmp_path_factory.mktemp("sgd")
    return {what: train_recorded(SGD_DENSE.replace(diagnostics=what), out / what) for what in ("none", "variance")}


@pytest.fixture(scope="module")
def correlation_runs(tmp_path_factory) -> dict[str, Recorded]:
    """AGENT with masks that never change between refreshes: static 90% sparse, and dense."""
    out = tmp_path_factory.mktemp("corr")
    configs = {"static": BASE.replace(optimizer="agent", pipeline="static", sparsity=0.9, diagnostics="correlation"),
               "dense": BASE.replace(optimizer="agent", diagnostics="correlation")}
    return {name: train_recorded(config, out / name) for name, config in configs.items()}


# ------------------------------------------------------------------------------------------------
# Independent references
# ------------------------------------------------------------------------------------------------

def n_trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def n_active_of(model: torch.nn.Module, masks: dict[str, torch.Tensor] | None) -> int:
    return n_trainable(model) - (0 if masks is None else sum(int((~m).sum()) for m in masks.values()))


def stacked_gradients(model: torch.nn.Module, batches, masks) -> np.ndarray:
    """[K, active coordinates] float64: the mean cross-entropy gradient of each batch, on a copy of
    ``model`` with every module in train mode (BN with batch statistics)."""
    model = copy.deepcopy(model).train()
    rows = []
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        parts = []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            g = p.grad.reshape(-1).double()
            if masks is not None and name in masks:
                g = g[masks[name].reshape(-1)]
            parts.append(g)
        rows.append(torch.cat(parts).numpy())
    return np.stack(rows)


def pearson64(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1])


def refresh_correlations(refreshes: list) -> list[float]:
    """Per refresh after the first: Pearson (float64) of the new g̃ and the full gradient at the
    previous θ̃ on the same batches (weighted by batch size), over the coordinates correctable at
    both refreshes."""
    values = []
    for (_, old_ok, _, _), (new, new_ok, snapshot, batches) in zip(refreshes, refreshes[1:]):
        keep = torch.cat([(a & b).reshape(-1) for a, b in zip(old_ok, new_ok)]).numpy()
        sizes = np.array([len(y) for _, y in batches], dtype=np.float64)
        at_snapshot = (stacked_gradients(snapshot, batches, None) * sizes[:, None]).sum(0) / sizes.sum()
        at_current = torch.cat([g.reshape(-1) for g in new]).double().numpy()
        values.append(pearson64(at_snapshot[keep], at_current[keep]))
    return values


def file_fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def copy_run(run_dir: Path, target: Path) -> Path:
    return Path(shutil.copytree(run_dir, target / Path(run_dir).name))


def assert_same_history(a: pd.DataFrame, b: pd.DataFrame, columns=None) -> None:
    columns = [c for c in a.columns if c not in TIMING_COLUMNS] if columns is None else columns
    pd.testing.assert_frame_equal(a[columns].reset_index(drop=True), b[columns].reset_index(drop=True),
                                  check_exact=True)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


# ------------------------------------------------------------------------------------------------
# 1. Diagnostics never change the run
# ------------------------------------------------------------------------------------------------

def test_diagnostics_all_leave_a_sparse_agent_run_unchanged(agent_runs):
    plain, diag = agent_runs["none"].result, agent_runs["all"].result
    assert plain.status == diag.status == "completed"
    # The masks really move during these runs, so the masks the diagnostics read are live ones.
    assert (diag.history["mask_change"] > 0).all()
    columns = ["train_loss", "train_acc", "test_loss", "test_acc", "lr", "c", "c_hat_ema", "c_hat_star", "density", "itop_rate",
               "mask_change"]
    assert_same_history(plain.history, diag.history, columns)
    assert_same_weights(plain.load_model(), diag.load_model())
    # The corrector's state (snapshot, g̃, masks of correction) and the sparsifier's are identical too.
    ca, cb = (load_checkpoint(r.run_dir / CHECKPOINT_FILE) for r in (plain, diag))
    for key in ("full_grad", "correctable"):
        for name, tensor in ca["callbacks"]["correction"]["corrector"][key].items():
            assert torch.equal(tensor, cb["callbacks"]["correction"]["corrector"][key][name]), (key, name)
    for name, mask in run_masks(ca).items():
        assert torch.equal(mask, run_masks(cb)[name]), name
    for name, state in ca["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, cb["optimizer"]["state"][name][key]), (name, key)
    new_columns = set(diag.history.columns) - set(plain.history.columns)
    assert new_columns == {"grad_corr", "grad_var", "grad_var_trace", "var_ratio", "c_var_opt"}


def test_diagnostics_variance_leave_a_dense_sgd_run_unchanged(sgd_runs):
    plain, diag = sgd_runs["none"].result, sgd_runs["variance"].result
    assert_same_history(plain.history, diag.history, ["train_loss", "train_acc", "test_loss", "test_acc", "lr"])
    assert_same_weights(plain.load_model(), diag.load_model())
    ca, cb = (load_checkpoint(r.run_dir / CHECKPOINT_FILE) for r in (plain, diag))
    for name, state in ca["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, cb["optimizer"]["state"][name][key]), (name, key)
    # Without a corrector there is no var_ratio/c_var_opt column, and no correlation at all.
    assert set(diag.history.columns) - set(plain.history.columns) == {"grad_var", "grad_var_trace"}


# ------------------------------------------------------------------------------------------------
# 2. grad_corr against the full gradients recorded right after each refresh
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["static", "dense"])
def test_grad_corr_is_the_pearson_of_the_full_gradients_at_theta_and_the_snapshot(correlation_runs, name):
    recorded = correlation_runs[name]
    history = recorded.result.history
    assert len(recorded.refreshes) == BASE.epochs  # one refresh per epoch, at its first step
    assert math.isnan(history["grad_corr"].iloc[0])  # no previous g̃ at the first refresh
    expected = refresh_correlations(recorded.refreshes)
    assert history["grad_corr"].iloc[1:].tolist() == pytest.approx(expected, rel=0, abs=1e-6)
    if name == "static":  # the masked coordinates are really left out (they hold g̃ = 0)
        assert not all(bool(m.all()) for m in recorded.refreshes[0][1])
    # The correlation costs no pass: training N + refresh (N, then 2N with a snapshot: the ĉ* pass)
    # + the correction's snapshot gradient N (c != 0 every step) = 768, then 1024 per epoch.
    assert history["fwd_bwd"].tolist() == [768, 1792, 2816]


@pytest.mark.parametrize("update_every", [2, 5])
def test_grad_corr_with_moving_masks_uses_the_masks_of_the_two_refreshes(agent_runs, tmp_path, update_every):
    # update_every=2: updates after steps 1, 3, 5, 7 -- a weight dropped at one update and grown back
    # at the next is unmasked at both refreshes. update_every=5: the one update of epoch 2 comes right
    # after the refresh at step 4 (sparsifier step 5), so up to then the run equals a static one.
    if update_every == 2:
        recorded = agent_runs["all"]
    else:
        recorded = train_recorded(AGENT_RIGL.replace(update_every=5, diagnostics="correlation"), tmp_path)
    history = recorded.result.history
    if len(recorded.refreshes) != BASE.epochs or not history["mask_change"].iloc[1] > 0:
        pytest.fail("precondition: one refresh per epoch and a mask update in epoch 2")
    expected = refresh_correlations(recorded.refreshes)
    if not all(math.isfinite(v) for v in expected):
        pytest.fail("precondition: finite reference correlations")
    assert math.isnan(history["grad_corr"].iloc[0])
    assert history["grad_corr"].iloc[1:].tolist() == pytest.approx(expected, rel=0, abs=1e-6)


# ------------------------------------------------------------------------------------------------
# 3. grad_var, grad_var_trace, var_ratio, c_var_opt against a brute-force computation
# ------------------------------------------------------------------------------------------------

def test_variance_columns_match_stacked_gradients_at_the_last_step(agent_runs):
    recorded = agent_runs["all"]
    history, loader = recorded.result.history, recorded.trainer.train_loader
    # Measured once per epoch, at its last step (after that step's optimizer update).
    assert [c["epoch"] for c in recorded.captures] == [0, 1, 2]
    assert [c["step"] for c in recorded.captures] == [(e + 1) * STEPS - 1 for e in range(3)]
    # The last measurement saw the final weights and the final snapshot.
    assert_same_weights(recorded.captures[-1]["model"], recorded.result.load_model())
    checkpoint = load_checkpoint(recorded.result.run_dir / CHECKPOINT_FILE)
    for name, p in recorded.captures[-1]["snapshot"].named_parameters():
        assert torch.equal(p, checkpoint["callbacks"]["correction"]["corrector"]["snapshot"]["parameters"][name])
    for capture, (_, row) in zip(recorded.captures, history.iterrows()):
        masks = capture["masks"]
        # The first K batches of the epoch, as training saw them (same order and augmentation).
        batches = [loader.batch(capture["epoch"], s) for s in range(K)]
        G = stacked_gradients(capture["model"], batches, masks)
        O = stacked_gradients(capture["snapshot"], batches, masks)
        n_active = n_active_of(capture["model"], masks)
        assert G.shape == O.shape == (K, n_active) and n_active < n_trainable(capture["model"])
        var_g = float(np.var(G, axis=0, ddof=1).sum())
        var_o = float(np.var(O, axis=0, ddof=1).sum())
        cov = float(((G - G.mean(0)) * (O - O.mean(0))).sum() / (K - 1))
        c = row["c"]  # the applied coefficient of that epoch
        corrected = float(np.var(G - c * O, axis=0, ddof=1).sum())  # + c·g̃ is a constant shift
        assert row["grad_var_trace"] == pytest.approx(var_g, rel=1e-7)
        assert row["grad_var"] == pytest.approx(var_g / n_active, rel=1e-7)
        assert row["var_ratio"] == pytest.approx(corrected / var_g, rel=1e-7)
        assert row["c_var_opt"] == pytest.approx(cov / var_o, rel=1e-6, abs=1e-9)


def test_variance_without_a_snapshot_matches_stacked_gradients(sgd_runs):
    recorded = sgd_runs["variance"]
    history, loader = recorded.result.history, recorded.trainer.train_loader
    assert [c["step"] for c in recorded.captures] == [(e + 1) * STEPS - 1 for e in range(SGD_DENSE.epochs)]
    for capture, (_, row) in zip(recorded.captures, history.iterrows()):
        assert capture["snapshot"] is None and capture["masks"] is None
        G = stacked_gradients(capture["model"], [loader.batch(capture["epoch"], s) for s in range(K)], None)
        var_g = float(np.var(G, axis=0, ddof=1).sum())
        assert row["grad_var_trace"] == pytest.approx(var_g, rel=1e-7)
        assert row["grad_var"] == pytest.approx(var_g / n_trainable(capture["model"]), rel=1e-7)


# ------------------------------------------------------------------------------------------------
# 4. fwd_bwd accounting
# ------------------------------------------------------------------------------------------------

def test_variance_passes_are_added_to_fwd_bwd(agent_runs, sgd_runs):
    # SGD: no snapshot, K batches of 64 per epoch.
    extra = sgd_runs["variance"].result.history["fwd_bwd"] - sgd_runs["none"].result.history["fwd_bwd"]
    assert extra.tolist() == [K * BATCH * e for e in (1, 2)]
    assert sgd_runs["none"].result.history["fwd_bwd"].tolist() == [256, 512]
    # AGENT: the first refresh runs at step 0 of epoch 1, so the snapshot already exists at the last
    # step of epoch 1: every epoch pays 2K batches (model and snapshot); correlation is free.
    extra = agent_runs["all"].result.history["fwd_bwd"] - agent_runs["none"].result.history["fwd_bwd"]
    assert extra.tolist() == [2 * K * BATCH * e for e in (1, 2, 3)]
    assert agent_runs["none"].result.history["fwd_bwd"].tolist() == [768, 1792, 2816]
    assert agent_runs["all"].result.meta["fwd_bwd"] == 2816 + 3 * 2 * K * BATCH


@pytest.mark.parametrize("subset, extra", [(224, 224), (64, 0)])
def test_variance_passes_count_examples_of_the_batches_used(tmp_path, subset, extra):
    # 224 images: batches of 64, 64, 64, 32; K=20 is capped at the 4 batches of the epoch, which
    # hold 224 examples. 64 images: a single batch, no variance (NaN) and no pass.
    config = SGD_DENSE.replace(epochs=1, train_subset=subset, diagnostics="variance", diagnostics_batches=20)
    history = train(config, out=tmp_path, progress=False).history
    assert history["fwd_bwd"].tolist() == [subset + extra]
    assert math.isnan(history["grad_var"].iloc[0]) == (extra == 0)


# ------------------------------------------------------------------------------------------------
# 5. Configuration
# ------------------------------------------------------------------------------------------------

NON_CORRECTING = [o for o in CHOICES["optimizer"] if o not in CORRECTOR_RULES]


def _optimizer_fields(optimizer: str) -> dict[str, Any]:
    return {"optimizer": optimizer, **({"momentum": 0.0} if optimizer in ("mvr", "agent-mvr") else {})}


@pytest.mark.parametrize("what", ["correlation", "all"])
@pytest.mark.parametrize("optimizer", NON_CORRECTING)
def test_correlation_needs_a_correcting_optimizer(optimizer, what):
    assert "sgd" in NON_CORRECTING
    with pytest.raises(ConfigError) as info:
        RunConfig(diagnostics=what, **_optimizer_fields(optimizer))
    message = str(info.value)
    assert message.startswith("RunConfig.diagnostics:") and "\n" not in message
    listed = re.search(r"\(([^)]*)\)", message)
    assert listed and [s.strip() for s in listed.group(1).split(",")] == list(CORRECTOR_RULES)
    assert RunConfig(diagnostics="variance", **_optimizer_fields(optimizer)).diagnostics == "variance"


@pytest.mark.parametrize("optimizer", list(CORRECTOR_RULES))
def test_every_correcting_optimizer_takes_every_diagnostic(optimizer):
    for what in DIAGNOSTICS:
        assert RunConfig(diagnostics=what, **_optimizer_fields(optimizer)).diagnostics == what


@pytest.mark.parametrize("changes, field, expected", [
    ({"diagnostics": "foo"}, "diagnostics", "valid choices: none, correlation, variance, all"),
    ({"diagnostics": "Variance"}, "diagnostics", "valid choices"),
    ({"diagnostics_batches": 1}, "diagnostics_batches", "[2, inf]"),
    ({"diagnostics_batches": 0}, "diagnostics_batches", "[2, inf]"),
    ({"diagnostics_batches": 2.0}, "diagnostics_batches", "int"),
    ({"diagnostics_batches": True}, "diagnostics_batches", "int"),
])
def test_bad_diagnostics_fields_raise(changes, field, expected):
    with pytest.raises(ConfigError) as info:
        RunConfig(**changes)
    assert str(info.value).startswith(f"RunConfig.{field}:") and expected in str(info.value)


def test_diagnostics_batches_two_is_enough():
    assert RunConfig(diagnostics="variance", diagnostics_batches=2).diagnostics_batches == 2


def test_callback_rejects_what_it_cannot_do():
    with pytest.raises(ValueError, match="diagnostics: 'foo' is invalid; valid choices: none, correlation"):
        DiagnosticsCallback("foo")
    with pytest.raises(ValueError, match="correcting optimizer"):
        DiagnosticsCallback("correlation", corrector=None)
    with pytest.raises(ValueError, match="correcting optimizer"):
        DiagnosticsCallback("all", corrector=None)


def test_diagnostics_callback_sits_before_the_correction():
    trainer, _ = train_module.prepare(AGENT_RIGL.replace(diagnostics="all", epochs=1))
    assert [cb.name for cb in trainer.callbacks] == ["diagnostics", "correction", "sparsity"]
    trainer, _ = train_module.prepare(AGENT_RIGL.replace(epochs=1))
    assert "diagnostics" not in [cb.name for cb in trainer.callbacks]


# ------------------------------------------------------------------------------------------------
# 6. Resume
# ------------------------------------------------------------------------------------------------

def test_resumed_run_has_the_same_history_with_diagnostics(agent_runs, tmp_path):
    config = AGENT_RIGL.replace(diagnostics="all")
    first = train(config, out=tmp_path, progress=False, stop_after_epoch=1)
    assert first.status == "interrupted" and len(first.history) == 1
    resumed = train(config, out=tmp_path, progress=False)
    assert resumed.status == "completed"
    reference = agent_runs["all"].result
    assert_same_history(reference.history, resumed.history)
    assert resumed.history["grad_corr"].iloc[1:].notna().all()
    assert_same_weights(reference.load_model(), resumed.load_model())


# ------------------------------------------------------------------------------------------------
# 7. diagnose_run on stored runs
# ------------------------------------------------------------------------------------------------

def _training_images(config: RunConfig):
    bundle = load_dataset(config.dataset).subset(config.train_subset, config.test_subset, seed=config.seed)
    return bundle.train.images, bundle.train.labels


def test_run_masks_are_the_sparsifier_masks(agent_runs):
    recorded = agent_runs["none"]
    sparsifier = next(cb for cb in recorded.trainer.callbacks if cb.name == "sparsity").sparsifier
    stored = run_masks(load_checkpoint(recorded.result.run_dir / CHECKPOINT_FILE))
    held = run_masks(recorded.trainer.checkpoint())
    assert set(stored) == set(held) == set(sparsifier.masks.masks)
    for name, mask in sparsifier.masks.masks.items():
        assert stored[name].dtype == torch.bool and torch.equal(stored[name], mask) and torch.equal(held[name], mask)
    # The stored masks are those the weights obey: every masked weight is exactly 0.
    model = recorded.result.load_model()
    for name, p in model.named_parameters():
        if name in stored:
            assert (p[~stored[name]] == 0).all(), name


def test_run_masks_of_a_dense_run_is_none(sgd_runs):
    assert run_masks(load_checkpoint(sgd_runs["none"].result.run_dir / CHECKPOINT_FILE)) is None


def test_diagnose_a_sparse_run(agent_runs, tmp_path):
    run_dir = copy_run(agent_runs["none"].result.run_dir, tmp_path)
    checkpoint_path = run_dir / CHECKPOINT_FILE
    before = file_fingerprint(checkpoint_path)
    table = diagnose_run(run_dir, batches=3, sigma=0.0, variance_sigma=0.0, replicates=2, seed=0, device="cpu")
    assert file_fingerprint(checkpoint_path) == before
    assert table["metric"].tolist() == ["grad_var", "grad_var_trace", "grad_corr"]
    checkpoint = load_checkpoint(checkpoint_path)
    masks = run_masks(checkpoint)
    model = load_run(run_dir).load_model()
    n_active = n_active_of(model, masks)
    assert n_active < n_trainable(model)
    assert (table["n_active"] == n_active).all()
    assert (table["replicates"] == 2).all() and (table["std"] == 0.0).all()
    assert table.set_index("metric").loc["grad_corr", "value"] == 1.0
    assert table.set_index("metric").loc["grad_corr", "batches"] == 256 // BATCH  # the run's batch size
    # σ = 0: the variance is that of the checkpoint itself, on the first 3 batches of the full-pass
    # order of the run's seed (pass 0, no augmentation).
    images, labels = _training_images(AGENT_RIGL)
    sampled = full_pass_loader(images, labels, BATCH, seed=AGENT_RIGL.seed, drop_last=True)
    G = stacked_gradients(model, [sampled.batch(0, s) for s in range(3)], masks)
    var_g = float(np.var(G, axis=0, ddof=1).sum())
    rows = table.set_index("metric")
    assert rows.loc["grad_var_trace", "value"] == pytest.approx(var_g, rel=1e-7)
    assert rows.loc["grad_var", "value"] == pytest.approx(var_g / n_active, rel=1e-7)
    assert rows.loc["grad_var", "batches"] == 3
    # diagnostics.json holds the rows and is merged with a later call at another σ.
    stored = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert set(stored) == {"grad_var_sigma0_r2", "grad_var_trace_sigma0_r2", "grad_corr_sigma0_r2"}
    second = diagnose_run(run_dir, "correlation", sigma=0.01, replicates=2, seed=0, device="cpu")
    assert second["metric"].tolist() == ["grad_corr"]
    value = second["value"].iloc[0]
    assert 0.0 < value < 1.0 and second["std"].iloc[0] > 0
    stored = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert set(stored) == {"grad_var_sigma0_r2", "grad_var_trace_sigma0_r2", "grad_corr_sigma0_r2",
                           "grad_corr_sigma0.01_r2"}
    assert stored["grad_corr_sigma0_r2"]["value"] == 1.0
    assert stored["grad_corr_sigma0.01_r2"]["value"] == pytest.approx(value, rel=1e-12)
    assert stored["grad_var_sigma0_r2"]["n_active"] == n_active
    assert file_fingerprint(checkpoint_path) == before


def test_masks_come_from_the_checkpoint_not_from_zero_weights(agent_runs, tmp_path):
    run_dir = copy_run(agent_runs["none"].result.run_dir, tmp_path)
    checkpoint_path = run_dir / CHECKPOINT_FILE
    checkpoint = load_checkpoint(checkpoint_path)
    masks = run_masks(checkpoint)
    name = next(iter(masks))
    index = int(masks[name].reshape(-1).nonzero()[0])
    weight = checkpoint["model"][name]
    assert weight.reshape(-1)[index] != 0
    weight.reshape(-1)[index] = 0.0  # an active weight that happens to be exactly 0
    masked_out = ~masks[name]
    assert (weight[masked_out] == 0).all()  # masked weights are 0 as well
    meta = read_json(run_dir / "meta.json")  # an edit the run store must accept: record its digest
    meta["files"][CHECKPOINT_FILE] = save_checkpoint(checkpoint_path, checkpoint)
    write_json(run_dir / "meta.json", meta)
    reread = run_masks(load_checkpoint(checkpoint_path))
    assert bool(reread[name].reshape(-1)[index])
    assert all(torch.equal(reread[n], masks[n]) for n in masks)
    table = diagnose_run(run_dir, "variance", batches=2, variance_sigma=0.0, replicates=1, device="cpu",
                         save=False)
    assert table["n_active"].tolist() == [n_active_of(load_run(run_dir).load_model(), masks)] * 2
    assert not (run_dir / SUMMARY_FILE).exists()  # save=False writes nothing


def test_diagnose_a_dense_run(sgd_runs, tmp_path):
    run_dir = copy_run(sgd_runs["none"].result.run_dir, tmp_path)
    before = file_fingerprint(run_dir / CHECKPOINT_FILE)
    table = diagnose_run(run_dir, ["correlation", "variance"], batches=20, sigma=0.0, replicates=3, device="cpu")
    assert file_fingerprint(run_dir / CHECKPOINT_FILE) == before
    assert sorted(table["metric"]) == ["grad_corr", "grad_var", "grad_var_trace"]
    n_total = n_trainable(load_run(run_dir).load_model())
    assert (table["n_active"] == n_total).all()
    rows = table.set_index("metric")
    assert rows.loc["grad_corr", "value"] == 1.0 and rows.loc["grad_corr", "std"] == 0.0
    assert rows.loc["grad_var", "batches"] == STEPS  # 20 capped at the 4 full batches
    assert rows.loc["grad_var", "value"] == pytest.approx(rows.loc["grad_var_trace", "value"] / n_total, rel=1e-12)
    assert rows.loc["grad_var", "std"] > 0  # σ = 0.015 by default: the 3 replicates differ
    assert (table["run"] == run_dir.name).all() and (table["pipeline"] == "dense").all()


@pytest.mark.parametrize("kwargs, argument", [
    ({"what": "foo"}, "what"),
    ({"what": ["variance", "foo"]}, "what"),
    ({"what": []}, "what"),
    ({"batches": 1}, "batches"),
    ({"batches": 2.5}, "batches"),
    ({"batches": True}, "batches"),
])
def test_diagnose_run_rejects_bad_arguments(sgd_runs, tmp_path, kwargs, argument):
    run_dir = copy_run(sgd_runs["none"].result.run_dir, tmp_path)
    with pytest.raises(ValueError) as info:
        diagnose_run(run_dir, device="cpu", **kwargs)
    assert str(info.value).startswith(f"{argument}:")
    assert not (run_dir / SUMMARY_FILE).exists()


def test_diagnose_run_needs_a_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        diagnose_run(tmp_path / "missing", device="cpu")


# ------------------------------------------------------------------------------------------------
# 8. Command line
# ------------------------------------------------------------------------------------------------

def test_cli_diagnose_prints_a_table(agent_runs, tmp_path, capsys):
    run_dir = copy_run(agent_runs["none"].result.run_dir, tmp_path)
    assert main(["diagnose", "--run", str(run_dir), "--batches", "3", "--replicates", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["metric", "value"]
    assert [line.split()[0] for line in lines[1:4]] == ["grad_var", "grad_var_trace", "grad_corr"]
    assert "diagnostics.json" in lines[-1]
    stored = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert set(stored) == {"grad_var_sigma0.015_r2", "grad_var_trace_sigma0.015_r2", "grad_corr_sigma0.015_r2"}
    assert stored["grad_var_sigma0.015_r2"]["batches"] == 3


@pytest.mark.parametrize("argv, needle", [
    (["--what", "foo"], "what"),
    (["--what", "variance,foo"], "what"),
    (["--batches", "1"], "batches"),
])
def test_cli_diagnose_bad_input_is_a_one_line_error(sgd_runs, tmp_path, capsys, argv, needle):
    run_dir = copy_run(sgd_runs["none"].result.run_dir, tmp_path)
    assert main(["diagnose", "--run", str(run_dir), *argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"agent-lab: error: {needle}:") and "\n" not in err
    assert not (run_dir / SUMMARY_FILE).exists()


def test_cli_diagnose_missing_run_folder(tmp_path, capsys):
    assert main(["diagnose", "--run", str(tmp_path / "nowhere"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agent-lab: error: ") and "nowhere" in err and "\n" not in err


def test_cli_diagnose_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["diagnose", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: agent-lab diagnose" in out
    for flag in ("--run", "--what", "--batches", "--sigma", "--variance-sigma", "--replicates", "--active-only",
                 "--seed", "--device"):
        assert flag in out


# -- snapshot of a stored run, history figures ----------------------------------------------------

def test_snapshot_of_run_is_the_correctors_last_snapshot(agent_runs):
    recorded = agent_runs["all"]
    corrector = next(cb.corrector for cb in recorded.trainer.callbacks if getattr(cb, "corrector", None) is not None)
    model, snapshot, info = snapshot_of_run(recorded.result.run_dir, device="cpu")
    live = corrector.snapshot_model
    for (name, p), (_, q) in zip(snapshot.named_parameters(), live.named_parameters()):
        assert torch.equal(p, q), name
    for (name, b), (_, c) in zip(snapshot.named_buffers(), live.named_buffers()):
        assert torch.equal(b, c), name
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), snapshot.parameters()))
    assert info["gamma"] * info["c_hat"] == pytest.approx(recorded.result.history["c"].iloc[-1], rel=1e-12)
    assert info["refreshes"] == BASE.epochs
    curve = variance_vs_c(model, snapshot, [recorded.trainer.train_loader.batch(0, s) for s in range(3)])
    assert curve.var_sgd > 0 and math.isfinite(curve.c_star)


def test_snapshot_of_run_without_corrector(sgd_runs):
    model, snapshot, info = snapshot_of_run(sgd_runs["none"].result.run_dir, device="cpu")
    assert snapshot is None and isinstance(model, torch.nn.Module) and "c_hat" not in info


def test_history_figures(agent_runs, sgd_runs):
    history = agent_runs["all"].result.history
    fig = plot_c_hat_vs_correlation(history)
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["gradient correlation"].get_ydata()[1:]) == pytest.approx(list(history["grad_corr"].iloc[1:]))
    with pytest.raises(KeyError, match="grad_corr"):
        plot_c_hat_vs_correlation(sgd_runs["none"].result.history)
    fig = plot_history_columns({"a": history, "b": sgd_runs["none"].result.history}, ("test_acc", "train_loss"))
    assert len(fig.axes) == 2
    with pytest.raises(KeyError, match="robust_acc"):
        plot_history_columns({"a": history}, ("robust_acc",))
