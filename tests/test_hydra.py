import importlib
import json
import math
import shutil

import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from agent_lab import RunConfig
from agent_lab.experiments.hydra import (HydraResult, ScoreMask, hydra_phase_epochs, initial_scores, phase_file,
                                         run_hydra)
from agent_lab.sparse.distributions import layer_counts
from agent_lab.sparse.masks import maskable_parameters

hydra_module = importlib.import_module("agent_lab.experiments.hydra")
train_module = importlib.import_module("agent_lab.train")

CONFIG = RunConfig(dataset="synthetic", model="vgg16", width=0.125, epochs=1, batch_size=64, lr=0.05,
                   lr_schedule="cosine", device="cpu", seed=3, adversarial="at", attack_steps=2,
                   robust_eval_subset=64, train_subset=128, test_subset=64)
SPARSITY = 0.9
PHASES = dict(pretrain_epochs=1, prune_epochs=1, finetune_epochs=1)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> HydraResult:
    torch.set_num_threads(1)
    return run_hydra(CONFIG, tmp_path_factory.mktemp("hydra"), sparsity=SPARSITY, progress=False, **PHASES)


def expected_counts(model, sparsity=SPARSITY, distribution="uniform"):
    shapes = {name: p.shape for name, p in maskable_parameters(model).items()}
    return layer_counts(shapes, sparsity, distribution)


def top_k_by_sorting(scores: torch.Tensor, k: int) -> torch.Tensor:
    order = torch.argsort(scores.abs().flatten(), descending=True)
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    mask[order[:k]] = True
    return mask.view(scores.shape)


def scaled_init_by_hand(weight: torch.Tensor) -> torch.Tensor:
    fan_in = weight.shape[1] * (weight.shape[2] * weight.shape[3] if weight.dim() == 4 else 1)
    return math.sqrt(6 / fan_in) * weight / weight.abs().max()


def assert_same_state(model, reference):
    state, expected = model.state_dict(), reference.state_dict()
    assert state.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(state[name], value), name


# -- building blocks -------------------------------------------------------------------------

def test_straight_through_gradient_of_the_scores():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    layer.weight.requires_grad_(False)
    w = layer.weight.detach().clone()
    signed = torch.randn(4, 6)
    for scores in (signed, signed.abs()):
        if parametrize.is_parametrized(layer):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
        mask = ScoreMask(scores, k=10)
        parametrize.register_parametrization(layer, "weight", mask)
        x, r = torch.randn(3, 6), torch.randn(3, 4)
        out = layer(x)
        keep = top_k_by_sorting(scores, 10)
        torch.testing.assert_close(out, x @ (w * keep).T + layer.bias)
        (out * r).sum().backward()
        grad_w_eff = r.T @ x  # d loss / d W_eff of y = x W_eff^T + b
        # HYDRA's estimator acts on |s|: d loss/d s = d loss/d w_eff * w * sign(s)
        torch.testing.assert_close(mask.scores.grad, grad_w_eff * w * scores.sign())
        assert layer.parametrizations.weight.original.grad is None
    # with positive scores this is d loss/d w_eff * w
    torch.testing.assert_close(mask.scores.grad, grad_w_eff * w)


def test_scaled_score_init_is_the_magnitude_ranking():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 5, 3)
    scores = initial_scores(conv.weight, "scaled")
    torch.testing.assert_close(scores, scaled_init_by_hand(conv.weight.detach()))
    assert torch.equal(top_k_by_sorting(scores, 40), top_k_by_sorting(conv.weight.detach(), 40))
    assert initial_scores(conv.weight, "kaiming").shape == conv.weight.shape


def test_default_phase_epochs():
    assert hydra_phase_epochs(CONFIG.replace(epochs=100)) == (100, 20, 100)
    assert hydra_phase_epochs(CONFIG.replace(epochs=2)) == (2, 1, 2)


# -- a whole run -----------------------------------------------------------------------------

def test_final_mask_has_exactly_the_target_counts(run):
    counts = expected_counts(run.model)
    assert set(run.masks) == set(counts)
    assert {name: int(mask.sum()) for name, mask in run.masks.items()} == counts
    assert sum(int(mask.sum()) for mask in run.masks.values()) == sum(counts.values())
    assert not any(parametrize.is_parametrized(m) for m in run.model.modules())
    for name, weight in maskable_parameters(run.model).items():
        assert torch.count_nonzero(weight[~run.masks[name]]) == 0
        assert torch.count_nonzero(weight[run.masks[name]]) == counts[name]


def test_prune_phase_changes_only_the_scores(run):
    pretrain = torch.load(run.run_dir / phase_file("pretrain"), weights_only=False)
    pruned = torch.load(run.run_dir / phase_file("prune"), weights_only=False)
    parameters = [name for name, _ in run.model.named_parameters()]
    assert set(pruned["model"]) == set(pretrain["model"])  # no score parametrization left in the model
    for name in parameters:
        assert torch.equal(pruned["model"][name], pretrain["model"][name]), name
    # BatchNorm ran in train mode: its running statistics moved
    running = [name for name in pretrain["model"] if name.endswith("running_mean")]
    assert any(not torch.equal(pruned["model"][name], pretrain["model"][name]) for name in running)
    for name, scores in pruned["scores"].items():
        start = scaled_init_by_hand(pretrain["model"][name])
        assert not torch.equal(scores, start), name


def test_mask_is_the_top_k_of_the_final_scores(run):
    pruned = torch.load(run.run_dir / phase_file("prune"), weights_only=False)
    counts = expected_counts(run.model)
    changed = 0
    for name, scores in pruned["scores"].items():
        expected = top_k_by_sorting(scores, counts[name])
        assert torch.equal(run.masks[name], expected), name
        assert torch.equal(pruned["masks"][name], expected), name
        changed += int((expected != top_k_by_sorting(pruned["model"][name], counts[name])).sum())
    assert changed > 0  # the pruning phase moved the mask away from magnitude pruning


def test_finetune_trains_the_survivors_only(run):
    pruned = torch.load(run.run_dir / phase_file("prune"), weights_only=False)
    for name, weight in maskable_parameters(run.model).items():
        mask = run.masks[name]
        assert torch.all(weight[~mask] == 0)
        assert not torch.equal(weight[mask], pruned["model"][name][mask]), name


def test_history_spans_the_three_phases(run):
    history = run.history
    counts = expected_counts(run.model)
    density = sum(counts.values()) / sum(m.numel() for m in run.masks.values())
    assert history["phase"].tolist() == ["pretrain", "prune", "finetune"]
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["density"].tolist() == pytest.approx([1.0, density, density])
    assert density == pytest.approx(1 - SPARSITY, abs=1e-4)
    for column in ("test_acc", "robust_acc", "train_acc"):
        assert history[column].between(0, 1).all(), column
    # AT with 2 attack steps: 3 passes per example, 128 training examples per epoch, in every phase
    assert history["fwd_bwd"].tolist() == [384, 768, 1152]
    assert history["wall_time"].is_monotonic_increasing and history["eval_time"].is_monotonic_increasing
    assert run.final["phase"] == "finetune" and run.final["epoch"] == 3
    stored = pd.read_csv(run.run_dir / "history.csv")
    pd.testing.assert_frame_equal(stored, history, check_exact=False)


def test_run_folder(run):
    assert run.status == "completed"
    assert run.run_dir.name.startswith("hydra_vgg16-w0.125_synthetic_at_sp0.9_")
    assert {p.name for p in run.run_dir.iterdir() if p.name != ".lock"} == {
        "config.json", "history.csv", "meta.json", "phase_pretrain.pt", "phase_prune.pt", "phase_finetune.pt"}
    config = json.loads((run.run_dir / "config.json").read_text())
    hydra = config.pop("hydra")
    assert RunConfig.from_dict(config) == CONFIG
    assert hydra["sparsity"] == SPARSITY and hydra["prune_epochs"] == 1 and hydra["score_init"] == "scaled"
    assert hydra["finetune_lr"] == pytest.approx(0.1 * CONFIG.lr)  # HYDRA's default: a tenth of the lr
    meta = json.loads((run.run_dir / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["fwd_bwd"] == 1152
    # the run store records every file HYDRA wrote, and refuses a damaged one
    assert set(meta["files"]) == {"history.csv", "phase_pretrain.pt", "phase_prune.pt", "phase_finetune.pt"}


def test_a_damaged_phase_checkpoint_is_refused(run, tmp_path):
    import shutil

    from agent_lab.runs import DamagedRunError

    copy = tmp_path / run.run_dir.name
    shutil.copytree(run.run_dir, copy, ignore=shutil.ignore_patterns(".lock"))
    path = copy / "phase_finetune.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DamagedRunError, match="phase_finetune.pt"):
        run_hydra(CONFIG, tmp_path, sparsity=SPARSITY, progress=False, **PHASES)


def test_a_completed_run_is_loaded_without_training(run, monkeypatch):
    mtimes = {p.name: p.stat().st_mtime_ns for p in run.run_dir.iterdir()}
    monkeypatch.setattr(hydra_module, "prepare", lambda config: pytest.fail("a completed run must not retrain"))
    monkeypatch.setattr(train_module.Trainer, "run", lambda *a, **k: pytest.fail("a completed run must not retrain"))
    again = run_hydra(CONFIG, run.run_dir.parent, sparsity=SPARSITY, progress=False, **PHASES)
    assert again.run_dir == run.run_dir and again.status == "completed"
    pd.testing.assert_frame_equal(again.history, run.history)
    assert again.masks.keys() == run.masks.keys()
    assert all(torch.equal(again.masks[name], run.masks[name]) for name in run.masks)
    assert_same_state(again.model, run.model)
    assert {p.name: p.stat().st_mtime_ns for p in run.run_dir.iterdir()} == mtimes


def test_resume_runs_only_the_unfinished_phase(run, tmp_path, monkeypatch):
    copy = tmp_path / run.run_dir.name
    shutil.copytree(run.run_dir, copy)
    (copy / phase_file("finetune")).unlink()
    starts = []
    original = train_module.Trainer.run

    def counting_run(trainer, *args, **kwargs):
        starts.append(trainer.state.epoch)
        return original(trainer, *args, **kwargs)

    monkeypatch.setattr(train_module.Trainer, "run", counting_run)
    resumed = run_hydra(CONFIG, tmp_path, sparsity=SPARSITY, progress=False, **PHASES)
    assert starts == [2]  # only the fine-tuning phase (epochs 2 -> 3) trained
    timing = ["wall_time", "eval_time"]
    pd.testing.assert_frame_equal(resumed.history.drop(columns=timing), run.history.drop(columns=timing))
    assert all(torch.equal(resumed.masks[name], run.masks[name]) for name in run.masks)
    assert_same_state(resumed.model, run.model)


def test_erk_distribution_gives_erk_counts(tmp_path):
    result = run_hydra(CONFIG, tmp_path, sparsity=0.8, distribution="erk", progress=False, **PHASES)
    counts = expected_counts(result.model, 0.8, "erk")
    assert counts != expected_counts(result.model, 0.8, "uniform")
    assert {name: int(mask.sum()) for name, mask in result.masks.items()} == counts


@pytest.mark.parametrize("kwargs, field", [
    (dict(sparsity=0.0), "sparsity"), (dict(sparsity=1.0), "sparsity"), (dict(sparsity=True), "sparsity"),
    (dict(sparsity=0.9, config=CONFIG.replace(adversarial="none")), "adversarial"),
    (dict(sparsity=0.9, config=CONFIG.replace(pipeline="static", sparsity=0.5)), "pipeline"),
    (dict(sparsity=0.9, score_init="random"), "score_init"),
    (dict(sparsity=0.9, distribution="gaussian"), "distribution"),
    (dict(sparsity=0.9, prune_epochs=0), "prune_epochs"),
    (dict(sparsity=0.9, score_lr=-1.0), "score_lr"),
    (dict(sparsity=0.9, finetune_lr=0.0), "finetune_lr"),
])
def test_bad_inputs_raise_before_writing(tmp_path, kwargs, field):
    config = kwargs.pop("config", CONFIG)
    with pytest.raises(ValueError, match=field) as error:
        run_hydra(config, tmp_path / "runs", progress=False, **kwargs)
    if field == "adversarial":
        assert "at, trades" in str(error.value)
    assert not (tmp_path / "runs").exists()
