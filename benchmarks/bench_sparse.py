"""Cost of the sparse pipelines on VGG-16 (width 1, CIFAR-10 shapes, batch 128).

For each pipeline: the time of one mask update, the per-step overhead of keeping weights,
gradients and optimizer state masked (the step hooks), and both as a fraction of a training epoch
(391 steps of batch 128, the CIFAR-10 epoch), all measured in one run against a dense step.

    python benchmarks/bench_sparse.py [--device cpu|cuda] [--steps 5] [--width 1.0]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from agent_lab import RunConfig
from agent_lab.models import build_model
from agent_lab.sparse import SPARSE_PIPELINES, build_sparsifier

STEPS_PER_EPOCH = 391  # CIFAR-10, batch 128


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(model, optimizer, x, y, steps: int, device) -> float:
    """Mean seconds per training step (forward, backward, optimizer step with its hooks)."""
    def one_step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    one_step()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    sync(device)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--sparsity", type=float, default=0.9)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.rand(128, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (128,), device=device)

    def fresh():
        torch.manual_seed(0)
        model = build_model("vgg16", 10, width=args.width).to(device)
        return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    model, optimizer = fresh()
    dense_step = time_steps(model, optimizer, x, y, args.steps, device)
    epoch = dense_step * STEPS_PER_EPOCH
    print(f"VGG-16 width {args.width:g}, batch 128, device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; dense step {dense_step * 1e3:.1f} ms, epoch ~{epoch:.1f} s")
    print(f"{'pipeline':<10} {'update ms':>10} {'update/epoch':>13} {'step overhead':>14} {'updates/epoch':>14} "
          f"{'total/epoch':>12}")
    for pipeline in SPARSE_PIPELINES:
        config = RunConfig(pipeline=pipeline, sparsity=args.sparsity, epochs=250, device=args.device)
        model, optimizer = fresh()
        sparsifier = build_sparsifier(config, model, optimizer, total_steps=250 * STEPS_PER_EPOCH)
        sparse_step = time_steps(model, optimizer, x, y, args.steps, device)
        update_ms = float("nan")
        updates_per_epoch = 0.0
        if hasattr(sparsifier, "update_masks"):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()  # leaves the stashed gradients the update needs where a pipeline stashes them
            sync(device)
            start = time.perf_counter()
            repeats = 3
            for _ in range(repeats):
                sparsifier.update_masks()
            sync(device)
            update_ms = (time.perf_counter() - start) / repeats * 1e3
            every = getattr(getattr(sparsifier, "schedule", None), "update_every", 1)
            updates_per_epoch = STEPS_PER_EPOCH / every if pipeline != "static" else 0.0
        overhead = (sparse_step - dense_step) / dense_step
        update_fraction = update_ms / 1e3 / epoch if update_ms == update_ms else 0.0
        total = overhead + update_fraction * updates_per_epoch
        print(f"{pipeline:<10} {update_ms:>10.1f} {update_fraction:>12.3%} {overhead:>13.1%} {updates_per_epoch:>14.2f} "
              f"{total:>11.1%}")


if __name__ == "__main__":
    main()
