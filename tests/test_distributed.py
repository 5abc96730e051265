"""agent_lab.distributed: global-batch BatchNorm and gradient means over gloo ranks, against one process."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from agent_lab.distributed import GlobalBatchNorm, all_reduce_mean_, convert_batch_norms, shard_bounds, world


def test_shard_bounds_cover_the_global_batch_in_order():
    for batch in (1, 7, 128, 130):
        for world_size in (1, 2, 3, 4):
            bounds = [shard_bounds(batch, r, world_size) for r in range(world_size)]
            assert bounds[0][0] == 0 and bounds[-1][1] == batch
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [stop - start for start, stop in bounds]
            assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="rank 2 is invalid for a world of 2"):
        shard_bounds(8, 2, 2)


def test_a_single_process_is_untouched():
    assert world() == (0, 1)
    t = torch.ones(3)
    all_reduce_mean_([t], weight=5.0)
    assert torch.equal(t, torch.ones(3))
    model = convert_batch_norms(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))
    assert isinstance(model[1], GlobalBatchNorm)
    x = torch.randn(6, 4, 5, 5)
    reference = nn.BatchNorm2d(4)
    reference.load_state_dict(model[1].state_dict())
    torch.testing.assert_close(model[1](x), reference(x))
    torch.testing.assert_close(model[1].running_var, reference.running_var)


def _worker(rank, world_size, init_file, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.manual_seed(0)
    x = torch.randn(10, 4, 3, 3, dtype=torch.float32) * 3 + 1
    weights = torch.randn(10, 4, 3, 3)
    bn = GlobalBatchNorm(4)
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 2, 4))
        bn.bias.copy_(torch.linspace(-1, 1, 4))
    start, stop = shard_bounds(10, rank, world_size)
    mine = x[start:stop].clone().requires_grad_(True)
    out = bn(mine)
    (out * weights[start:stop]).sum().backward()
    grads = [bn.weight.grad.clone(), bn.bias.grad.clone()]
    for g in grads:
        dist.all_reduce(g)  # each rank holds its slice's share of the parameter gradients
    mean_me = torch.full((3,), float(rank + 1))
    all_reduce_mean_([mean_me], weight=float(stop - start))
    torch.save({"out": out.detach(), "input_grad": mine.grad, "grads": grads, "running": (bn.running_mean, bn.running_var),
                "mean": mean_me}, os.path.join(results, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.parametrize("world_size", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_global_batch_norm_over_ranks_equals_one_process_on_the_whole_batch(world_size, tmp_path):
    mp.spawn(_worker, args=(world_size, str(tmp_path / "init"), str(tmp_path)), nprocs=world_size, join=True)
    torch.manual_seed(0)
    x = (torch.randn(10, 4, 3, 3) * 3 + 1).requires_grad_(True)
    weights = torch.randn(10, 4, 3, 3)
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 2, 4))
        bn.bias.copy_(torch.linspace(-1, 1, 4))
    out = bn(x)
    (out * weights).sum().backward()
    parts = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world_size)]
    torch.testing.assert_close(torch.cat([p["out"] for p in parts]), out.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([p["input_grad"] for p in parts]), x.grad, rtol=1e-4, atol=1e-5)
    for part in parts:
        torch.testing.assert_close(part["grads"][0], bn.weight.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(part["grads"][1], bn.bias.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(part["running"][0], bn.running_mean, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(part["running"][1], bn.running_var, rtol=1e-6, atol=1e-6)
    sizes = [stop - start for start, stop in (shard_bounds(10, r, world_size) for r in range(world_size))]
    expected = sum((r + 1) * n for r, n in enumerate(sizes)) / 10
    for part in parts:
        torch.testing.assert_close(part["mean"], torch.full((3,), expected))


def test_what_ranks_cannot_do_is_refused_in_one_line():
    from agent_lab import RunConfig
    from agent_lab.errors import ConfigError
    from agent_lab.train import check_data_parallel

    base = RunConfig(dataset="synthetic", model="vgg16", width=0.0625, device="cpu")
    for accepted in (base.replace(optimizer="agent-mvr", diagnostics="variance"),
                     base.replace(adversarial="at", robust_eval="pgd20")):
        check_data_parallel(accepted, 2)
    with pytest.raises(ConfigError, match=r"RunConfig.fused_passes: True is invalid with 2 ranks; a vmap'd pass"):
        check_data_parallel(base.replace(optimizer="agent", fused_passes=True), 2)
