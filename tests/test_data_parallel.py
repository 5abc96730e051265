"""One run over 2 gloo ranks against the same run in one process (the global batch split across ranks)."""
import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from agent_lab import RunConfig, train
from agent_lab.train import prepare

# Four steps (two epochs of two; an evaluation, two AGENT refreshes and a RigL update between them)
# keep the comparison a test of the arithmetic: this small VGG amplifies float rounding by orders of
# magnitude per step early in training (BN channels of tiny batch variance), so one process against
# two parts by 5e-8 after 4 steps, 2e-6 after 5 and 3e-3 after 6, as any change of summation order does.
BASE = RunConfig(dataset="cifar10-mini", train_subset=128, test_subset=100, model="vgg16", width=0.0625, epochs=2,
                 batch_size=64, lr=0.002, lr_schedule="constant", device="cpu", seed=1, c0=0.5, gamma=0.5)
CASES = {"sgd-dense": {}, "agent-dense": {"optimizer": "agent"},
         "sgd-rigl": {"pipeline": "rigl", "sparsity": 0.9, "update_every": 2},
         "agent-rigl": {"optimizer": "agent", "pipeline": "rigl", "sparsity": 0.9, "update_every": 2},
         "agent-bsr": {"optimizer": "agent", "pipeline": "bsr", "sparsity": 0.9},  # noise and reconnection
         "agent-mvr-set": {"optimizer": "agent-mvr", "pipeline": "set", "sparsity": 0.9, "update_every": 2},
         # PGD-AT: the random starts of the ranks' slices are those of the global batch (0 steps: the
         # sign steps of PGD turn rounding differences of the weights into whole-step flips of some
         # pixels, 8e-4 apart after 4 steps with 2 PGD steps); robust_acc attacks the whole subset on
         # each rank
         "sgd-at": {"adversarial": "at", "attack_steps": 0, "robust_eval": "pgd10", "robust_eval_subset": 40},
         # every in-training diagnostic (the correlation compares the refreshes of epochs 1 and 2)
         "agent-diagnostics": {"optimizer": "agent", "diagnostics": "all", "diagnostics_batches": 2}}
DIAGNOSTIC_COLUMNS = ("grad_corr", "grad_var", "grad_var_trace", "var_ratio", "c_var_opt")


def _state(trainer):
    state = {"params": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
             "history": trainer.history()}
    for callback in trainer.callbacks:
        if getattr(callback, "corrector", None) is not None:
            corrector = callback.corrector
            state["full_grad"] = [g.clone() for g in corrector.full_gradient_state()[0]]
            state["c"] = (corrector.c, corrector.c_hat, corrector.c_hat_star)
        if getattr(callback, "sparsifier", None) is not None:
            sparsifier = callback.sparsifier
            state["masks"] = {k: sparsifier.masks[k].clone() for k in sparsifier.params}
    return state


def _rank(rank, world_size, init_file, results, configs):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        for name, config in configs.items():
            trainer, _ = prepare(config)
            assert trainer.run(progress=False) == "completed"
            torch.save(_state(trainer), os.path.join(results, f"{name}_rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ranks")
    configs = {name: BASE.replace(**changes) for name, changes in CASES.items()}
    mp.spawn(_rank, args=(2, str(folder / "init"), str(folder), configs), nprocs=2, join=True)
    return folder, configs


@pytest.mark.parametrize("name", list(CASES))
def test_two_ranks_hold_identical_state_and_match_one_process(name, two_ranks):
    folder, configs = two_ranks
    ranks = [torch.load(folder / f"{name}_rank{r}.pt", weights_only=False) for r in range(2)]
    for key, value in ranks[0]["params"].items():  # bit-identical on both ranks
        assert torch.equal(value, ranks[1]["params"][key]), key
    for key in ranks[0].get("masks", {}):
        assert torch.equal(ranks[0]["masks"][key], ranks[1]["masks"][key])
    torch.set_num_threads(1)  # as the ranks: another thread count sums in another order (conftest restores it)
    trainer, _ = prepare(configs[name])
    assert trainer.run(progress=False) == "completed"
    one = _state(trainer)
    flat = lambda params: torch.cat([v.double().flatten() for k, v in params.items() if "num_batches" not in k])  # noqa: E731
    assert float((flat(ranks[0]["params"]) - flat(one["params"])).norm() / flat(one["params"]).norm()) < 1e-5
    for key in one.get("masks", {}):
        assert torch.equal(ranks[0]["masks"][key], one["masks"][key])
    history, expected = ranks[0]["history"], one["history"]
    assert history["fwd_bwd"].tolist() == expected["fwd_bwd"].tolist()
    for column in ("train_loss", "train_acc", "test_loss", "test_acc") + (("robust_acc",) if name == "sgd-at" else ()):
        torch.testing.assert_close(torch.tensor(history[column].to_numpy()), torch.tensor(expected[column].to_numpy()),
                                   rtol=1e-4, atol=1e-4)
    diagnostics = [column for column in DIAGNOSTIC_COLUMNS if column in expected]
    assert diagnostics == (list(DIAGNOSTIC_COLUMNS) if name == "agent-diagnostics" else [])
    for column in diagnostics:  # the diagnostics see the global batches, as one process does; to the
        # float32 error of per-batch gradients (~1e-3 relative, as g̃ below), which the variance over
        # only 2 batches (a difference of two nearly equal gradients) amplifies a few times
        assert expected[column].notna().any(), column
        torch.testing.assert_close(torch.tensor(history[column].to_numpy()), torch.tensor(expected[column].to_numpy()),
                                   rtol=1e-2, atol=1e-6, equal_nan=True, msg=column)
    if "c" in one:
        c, c_hat, c_hat_star = ranks[0]["c"]
        assert c == pytest.approx(one["c"][0], rel=1e-4) and c_hat_star == pytest.approx(one["c"][2], rel=1e-3)
        # g̃ of the first layers carries float32's error of ~1e-3 relative (against float64) either way,
        # more in this tiny 90 %-sparse net
        for a, b in zip(ranks[0]["full_grad"], one["full_grad"]):
            assert float((a - b).norm() / b.norm()) < 1e-2
        together = [torch.cat([g.flatten() for g in state["full_grad"]]) for state in (ranks[0], one)]
        assert float((together[0] - together[1]).norm() / together[1].norm()) < 1e-2


def _train_rank(rank, world_size, init_file, out, config, stop_after_epoch, results):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        result = train(config, out=out, progress=False, stop_after_epoch=stop_after_epoch)
        torch.save({"status": result.status, "history": result.history, "dir": str(result.run_dir)},
                   os.path.join(results, f"train_rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _train_two_ranks(tmp_path, tag, out, config, stop_after_epoch=None):
    folder = tmp_path / tag
    folder.mkdir()
    mp.spawn(_train_rank, args=(2, str(folder / "init"), str(out), config, stop_after_epoch, str(folder)), nprocs=2,
             join=True)
    return [torch.load(folder / f"train_rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.slow
def test_rank_zero_writes_the_run_and_a_stopped_run_resumes_exactly(tmp_path):
    config = BASE.replace(optimizer="agent", epochs=3)
    straight = _train_two_ranks(tmp_path, "straight", tmp_path / "a", config)
    assert [r["status"] for r in straight] == ["completed", "completed"]
    assert straight[0]["history"].drop(columns=["wall_time", "eval_time"]).equals(
        straight[1]["history"].drop(columns=["wall_time", "eval_time"]))
    run_dirs = list((tmp_path / "a").iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "checkpoint.pt").exists()
    stopped = _train_two_ranks(tmp_path, "stopped", tmp_path / "b", config, stop_after_epoch=1)
    assert [r["status"] for r in stopped] == ["interrupted", "interrupted"]
    resumed = _train_two_ranks(tmp_path, "resumed", tmp_path / "b", config)
    columns = ["train_loss", "train_acc", "test_loss", "test_acc", "fwd_bwd", "c", "c_hat_ema", "c_hat_star"]
    for rank in range(2):
        assert resumed[rank]["history"][columns].equals(straight[0]["history"][columns])
    again = _train_two_ranks(tmp_path, "again", tmp_path / "b", config)  # cached: nothing trains
    assert [r["status"] for r in again] == ["completed", "completed"]


def _dying_rank(rank, world_size, init_file, out, config, results):
    if rank == 1:  # the job of rank 1 dies in the second epoch, as a killed process does
        from agent_lab.train import Trainer
        original = Trainer.train_epoch

        def dying(self, progress=False):
            if self.state.epoch == 1:
                os._exit(1)
            return original(self, progress)

        Trainer.train_epoch = dying
    _train_rank(rank, world_size, init_file, out, config, None, results)


@pytest.mark.slow
def test_a_killed_rank_leaves_a_run_that_resumes_over_two_ranks_or_one(tmp_path):
    config = BASE.replace(optimizer="agent", pipeline="rigl", sparsity=0.9, update_every=2, epochs=3)
    straight = _train_two_ranks(tmp_path, "straight", tmp_path / "a", config)
    folder = tmp_path / "killed"
    folder.mkdir()
    with pytest.raises(Exception):
        mp.spawn(_dying_rank, args=(2, str(folder / "init"), str(tmp_path / "b"), config, str(folder)), nprocs=2,
                 join=True)
    resumed = _train_two_ranks(tmp_path, "resumed", tmp_path / "b", config)
    columns = ["train_loss", "test_acc", "fwd_bwd", "density", "c_hat_star"]
    assert resumed[0]["history"][columns].equals(straight[0]["history"][columns])
    meta = json.loads(next((tmp_path / "b").glob("*/meta.json")).read_text())
    assert meta["sessions"] == 2 and meta["execution"]["ranks"] == 2
    # a run stopped over two ranks resumes in one process: its checkpoint does not depend on the ranks
    _train_two_ranks(tmp_path, "two-then-one", tmp_path / "c", config.replace(epochs=3), stop_after_epoch=1)
    one = train(config, out=tmp_path / "c", progress=False)
    assert one.status == "completed" and one.history["fwd_bwd"].tolist() == straight[0]["history"]["fwd_bwd"].tolist()
    assert json.loads(next((tmp_path / "c").glob("*/meta.json")).read_text())["execution"]["ranks"] == 1


@pytest.mark.slow
def test_two_ranks_on_a_streamed_data_set_match_one_process(imagenet_config, tmp_path):
    """ImageNet layout (streamed, per-example crops): SGD and AGENT over 2 ranks against one process."""
    configs = {"sgd": imagenet_config(), "agent": imagenet_config(optimizer="agent", epochs=2)}
    mp.spawn(_rank, args=(2, str(tmp_path / "init"), str(tmp_path), configs), nprocs=2, join=True)
    torch.set_num_threads(1)  # as the ranks (conftest restores the count)
    for name, config in configs.items():
        ranks = [torch.load(tmp_path / f"{name}_rank{r}.pt", weights_only=False) for r in range(2)]
        for key, value in ranks[0]["params"].items():
            assert torch.equal(value, ranks[1]["params"][key]), key  # bit-identical on both ranks
        trainer, _ = prepare(config)
        assert trainer.run(progress=False) == "completed"
        one = _state(trainer)
        flat = lambda params: torch.cat([v.double().flatten() for k, v in params.items() if "num_batches" not in k])  # noqa: E731
        # AGENT's g̃ sums a whole pass in float32 in another order over 2 ranks (~1e-3 relative in the
        # first layers, as above), which its corrected steps carry on
        tolerance = 1e-5 if name == "sgd" else 1e-4
        assert float((flat(ranks[0]["params"]) - flat(one["params"])).norm() / flat(one["params"]).norm()) < tolerance
        assert ranks[0]["history"]["fwd_bwd"].tolist() == one["history"]["fwd_bwd"].tolist()
        torch.testing.assert_close(torch.tensor(ranks[0]["history"]["train_loss"].to_numpy()),
                                   torch.tensor(one["history"]["train_loss"].to_numpy()), rtol=1e-4, atol=1e-4)
