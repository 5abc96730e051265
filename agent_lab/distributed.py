"""Data-parallel training over ``torch.distributed`` ranks (``torchrun``), one process per device.

What one run split over N ranks must keep equal to the same run in one process:

* **the data**: every rank draws the same *global* batch (order and augmentation are pure functions
  of ``(seed, epoch, step)``) and trains on its own contiguous slice of it
  (:func:`shard_bounds`), so the union of the ranks' slices is the one-process batch;
* **the batch statistics**: BatchNorm in train mode normalises with the statistics of the whole
  global batch, not of a rank's slice. :class:`GlobalBatchNorm` all-reduces the per-channel sums
  (differentiably, through ``torch.distributed.nn``), so its output, its gradients and its running
  statistics equal one process's on the concatenated batch, on any backend (PyTorch's
  ``SyncBatchNorm`` refuses CPU tensors, so gloo could not be tested with it);
* **the gradients**: a rank's mean loss over its slice, averaged over ranks, is the global mean
  (slices of equal size); :func:`all_reduce_mean_` averages gradient tensors in place.

Nothing here runs unless a process group is initialised: :func:`world` is ``(0, 1)`` otherwise and
every helper is the identity.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["GlobalBatchNorm", "all_reduce_mean_", "all_reduce_sum_", "broadcast_value",
           "convert_batch_norms", "init_from_environment", "is_distributed", "shard_bounds", "world"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_environment(device: str = "auto") -> tuple[int, int]:
    """Join the process group ``torchrun`` describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...):
    NCCL on CUDA devices, gloo otherwise. Without those variables nothing happens. Returns
    ``(rank, world size)``."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 2 or dist.is_initialized():
        return world()
    cuda = torch.cuda.is_available() and device != "cpu"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo")
    return world()


def shard_bounds(batch: int, rank: int, world_size: int) -> tuple[int, int]:
    """The slice ``[start, stop)`` of a global batch of ``batch`` examples that ``rank`` trains on:
    contiguous, sizes differing by at most one (a last partial batch may leave a rank 0 examples)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is invalid for a world of {world_size}")
    base, extra = divmod(batch, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def all_reduce_mean_(tensors: Sequence[torch.Tensor], weight: float = 1.0) -> None:
    """Replace each tensor by the weighted mean over ranks: Σ_r weight_r · t_r / Σ_r weight_r.

    ``weight`` is this rank's (e.g. its examples in the batch, so unequal slices still give the
    global mean). One flat all-reduce for all tensors; no-op in a single process."""
    if not is_distributed() or not tensors:
        return
    flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors] + [
        torch.tensor([1.0], dtype=torch.float64, device=tensors[0].device)])
    flat[:-1].mul_(weight)
    flat[-1] = weight
    dist.all_reduce(flat)
    flat[:-1].div_(flat[-1])
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t))
        offset += n


def all_reduce_sum_(tensors: Sequence[torch.Tensor]) -> None:
    """Replace each tensor by its sum over ranks (one flat all-reduce); no-op in a single process."""
    if not is_distributed() or not tensors:
        return
    flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t))
        offset += n


def global_rows(local: int, device: torch.device | str = "cpu") -> tuple[int, int, int]:
    """``(start, stop, total)``: the rows this rank's ``local`` examples are of the global batch
    (one tiny all-reduce); ``(0, local, local)`` in a single process."""
    if not is_distributed():
        return 0, int(local), int(local)
    total = torch.tensor([float(local)], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    rank, world_size = world()
    start, stop = shard_bounds(int(total.item()), rank, world_size)
    if stop - start != local:
        raise RuntimeError(f"rank {rank} holds {local} examples of a global batch of {int(total.item())}, "
                           f"not its contiguous slice [{start}, {stop})")
    return start, stop, int(total.item())


def broadcast_value(value, source: int = 0):
    """``value`` as rank ``source`` holds it, on every rank (any picklable object); itself in one process."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=source)
    return box[0]


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) with its gradient: every rank's output depends on every rank's input, so the
    gradient reaching each rank's input is the sum of the gradients at every rank's output."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose train-mode statistics are those of the global batch over every rank.

    Drop-in for ``BatchNorm1d/2d`` (same parameters, buffers and state-dict keys). In eval mode, or
    in one process, it is ordinary BatchNorm. In train mode across ranks it all-reduces the
    per-channel count, sum and sum of squares (differentiably: the backward reduces the gradients of
    the statistics too), normalises with the global mean and
    biased variance, and updates the running statistics with the unbiased global variance, as one
    process would on the concatenated batch.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"GlobalBatchNorm: expected at least 2-D input, got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0] + list(range(2, input.dim()))
        shape = [1, -1] + [1] * (input.dim() - 2)
        x = input.float()
        wide = x.double()  # sums in float64: E[x²] - E[x]² loses no precision to cancellation
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)
        stats = _SumOverRanks.apply(torch.cat([count, wide.sum(dims), (wide * wide).sum(dims)]))
        n = stats[0]
        channels = x.shape[1]
        mean = stats[1:1 + channels] / n
        var = (stats[1 + channels:] / n - mean * mean).clamp_min(0)
        out = (x - mean.float().view(shape)) * torch.rsqrt(var.float().view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum)
                unbiased = var.detach() * (n / (n - 1).clamp_min(1)).detach()
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        return out.to(input.dtype)


def convert_batch_norms(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm1d/2d/3d`` of ``module`` by a :class:`GlobalBatchNorm` holding the same
    parameters and buffers (in place where possible; returns the converted module)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        converted = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                    module.track_running_stats)
        converted.load_state_dict(module.state_dict())
        converted.train(module.training)
        return converted.to(next((t.device for t in module.state_dict().values()), torch.device("cpu")))
    for name, child in module.named_children():
        module._modules[name] = convert_batch_norms(child)
    return module
