"""The sparse pipelines inside the training loop: invariants, history columns, resume, bad input."""
import pandas as pd
import pytest
import torch

from agent_lab import ConfigError, RunConfig, train
from agent_lab.models import build_model
from agent_lab.runs import CHECKPOINT_FILE
from agent_lab.sparse import SPARSE_PIPELINES, layer_counts, maskable_parameters
from agent_lab.train import prepare

WALL_CLOCK = ["wall_time", "eval_time"]

# 1,000 real CIFAR-10 images, 16 steps per epoch, mask updates every 4 steps.
MINI = RunConfig(dataset="cifar10-mini", train_subset=1000, test_subset=500, model="vgg16", width=0.125,
                 epochs=3, batch_size=64, lr=0.05, lr_schedule="cosine", device="cpu", seed=1)


def sparse_config(pipeline: str, sparsity: float, **changes) -> RunConfig:
    scheduled = pipeline not in ("static", "bsr")
    return MINI.replace(pipeline=pipeline, sparsity=sparsity, **({"update_every": 4} if scheduled else {}),
                        **changes)


def expected_nnz(config: RunConfig) -> tuple[int, int]:
    model = build_model(config.model, 10, width=config.width)
    shapes = {name: p.shape for name, p in maskable_parameters(model).items()}
    counts = layer_counts(shapes, config.sparsity, "erk")
    return sum(counts.values()), sum(s.numel() for s in shapes.values())


@pytest.mark.parametrize("sparsity", [0.9, 0.99])
@pytest.mark.parametrize("pipeline", SPARSE_PIPELINES)
def test_each_pipeline_trains_and_ends_at_the_target_density(pipeline, sparsity, tmp_path):
    config = sparse_config(pipeline, sparsity)
    result = train(config, out=tmp_path, progress=False)
    history = result.history
    assert result.status == "completed"
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    nnz, numel = expected_nnz(config)
    assert history["density"].tolist() == pytest.approx([nnz / numel] * len(history), abs=0, rel=1e-12)
    rates = history["itop_rate"].tolist()
    assert all(b >= a for a, b in zip(rates, rates[1:])) and rates[-1] <= 1.0 and rates[0] >= nnz / numel
    if pipeline in ("set", "rigl", "set-itop", "rigl-itop"):
        assert rates[-1] > rates[0] * 1.0001  # masks moved: exploration grew
        assert (history["mask_change"] > 0).any()
    layers = pd.read_csv(result.run_dir / "layer_density.csv")
    assert layers["epoch"].tolist() == [1, 2, 3] and layers.shape[1] > 10

    # the saved weights are exactly zero wherever the saved mask is off
    checkpoint = torch.load(result.run_dir / CHECKPOINT_FILE, weights_only=False)
    masks = checkpoint["callbacks"]["sparsity"]["sparsifier"]["masks"]["masks"]
    for name, mask in masks.items():
        weight = checkpoint["model"][name]
        assert torch.count_nonzero(weight[~mask]) == 0, name
    assert sum(int(m.sum()) for m in masks.values()) == nnz


@pytest.mark.parametrize("pipeline", ["rigl", "bsr"])
def test_resumed_sparse_run_matches_the_uninterrupted_one(pipeline, tmp_path):
    config = sparse_config(pipeline, 0.9)
    straight = train(config, out=tmp_path / "a", progress=False)
    train(config, out=tmp_path / "b", progress=False, stop_after_epoch=1)
    resumed = train(config, out=tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(resumed.history.drop(columns=WALL_CLOCK),
                                  straight.history.drop(columns=WALL_CLOCK), check_exact=True)
    a = torch.load(straight.run_dir / CHECKPOINT_FILE, weights_only=False)
    b = torch.load(resumed.run_dir / CHECKPOINT_FILE, weights_only=False)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    masks_a = a["callbacks"]["sparsity"]["sparsifier"]["masks"]["masks"]
    masks_b = b["callbacks"]["sparsity"]["sparsifier"]["masks"]["masks"]
    assert all(torch.equal(masks_a[k], masks_b[k]) for k in masks_a)


def test_structured_two_four_masks_train(tmp_path):
    config = MINI.replace(pipeline="static", sparsity=0.5, sparse_init="nm", nm="2:4", epochs=1,
                          dense_layers="first")  # the RGB input conv has 3 input channels: not divisible by 4
    result = train(config, out=tmp_path, progress=False)
    assert result.status == "completed"
    assert result.final["density"] == pytest.approx(0.5)


@pytest.mark.parametrize("changes, field", [
    ({"pipeline": "rigl", "sparsity": 0.0}, "sparsity"),
    ({"pipeline": "rigl", "sparsity": 0.9, "growth": "magic"}, "growth"),
    ({"pipeline": "static", "sparsity": 0.9, "growth": "random"}, "growth"),
    ({"pipeline": "rigl", "sparsity": 0.9, "drop_fraction": 1.5}, "drop_fraction"),
    ({"pipeline": "rigl", "sparsity": 0.9, "t_end": 0.0}, "t_end"),
    ({"pipeline": "rigl", "sparsity": 0.9, "update_every": 0}, "update_every"),
    ({"pipeline": "rigl", "sparsity": 0.9, "sparse_init": "bernoulli"}, "sparse_init"),
    ({"pipeline": "static", "sparsity": 0.9, "sparse_init": "nm", "nm": "2:4"}, "sparsity"),
    ({"pipeline": "static", "sparsity": 0.5, "sparse_init": "nm", "nm": "4:2"}, "nm"),
    ({"pipeline": "static", "sparsity": 0.5, "nm": "2:4"}, "nm"),
    ({"pipeline": "rigl", "sparsity": 0.9, "dense_layers": "middle"}, "dense_layers"),
    ({"update_every": 10}, "update_every"),
    ({"pipeline": "rigl", "sparsity": 0.9, "sparse_init": "bsr-vgg16"}, "sparse_init"),
])
def test_bad_sparse_settings_are_refused(changes, field):
    with pytest.raises(ConfigError, match=f"^RunConfig.{field}:"):
        RunConfig(**changes)


def test_dense_layer_policy_keeps_first_and_last_layers_dense(tmp_path):
    config = sparse_config("rigl", 0.9, dense_layers="first-last", epochs=1)
    trainer, _ = prepare(config)
    (callback,) = trainer.callbacks
    names = list(maskable_parameters(trainer.model))
    assert names[0] not in callback.sparsifier.masks.masks and names[-1] not in callback.sparsifier.masks.masks


def test_bsr_with_its_vgg16_density_table_keeps_the_global_count(tmp_path):
    config = sparse_config("bsr", 0.9, sparse_init="bsr-vgg16", epochs=1, weight_decay_mode="decoupled",
                           input_norm="none")
    result = train(config, out=tmp_path, progress=False)
    nnz, numel = expected_nnz(config)
    assert result.status == "completed" and result.final["density"] == nnz / numel


def test_cli_takes_the_sparse_flags(tmp_path, capsys):
    from agent_lab.cli import main

    assert main(["train", "--dataset", "synthetic", "--width", "0.125", "--epochs", "1", "--pipeline", "rigl",
                 "--sparsity", "0.9", "--update_every", "2", "--growth", "random-unfired", "--out", str(tmp_path),
                 "--quiet", "--device", "cpu"]) == 0
    (run_dir,) = tmp_path.iterdir()
    history = pd.read_csv(run_dir / "history.csv")
    assert {"density", "itop_rate", "mask_change"} <= set(history.columns)
    assert history["mask_change"].iloc[-1] > 0
