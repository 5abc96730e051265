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
from agent_lab.sparse import DEFAULTS, SPARSE_PIPELINES, build_sparsifier

STEPS_PER_EPOCH = 391  # CIFAR-10, batch 128


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_times(model, optimizer, x, y, steps: int, device, warmup: bool = True) -> list[float]:
    """Seconds of each training step (forward, backward, optimizer step with its hooks)."""
    def one_step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    if warmup:
        one_step()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        one_step()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


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
    dense_step = mean(step_times(model, optimizer, x, y, args.steps, device))
    epoch = dense_step * STEPS_PER_EPOCH
    print(f"VGG-16 width {args.width:g}, sparsity {args.sparsity:g}, batch 128, device {device}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; dense step {dense_step * 1e3:.1f} ms, "
          f"epoch ~{epoch:.1f} s ({STEPS_PER_EPOCH} steps)")
    print(f"{'pipeline':<10} {'step overhead':>14} {'update ms':>10} {'update/epoch':>13} {'updates/epoch':>14} "
          f"{'total/epoch':>12}")
    for pipeline in SPARSE_PIPELINES:
        defaults = DEFAULTS[pipeline]
        scheduled = pipeline not in ("static", "bsr")
        # Updates every other step so that one run times both kinds of step; the per-epoch cost
        # uses the pipeline's real update interval.
        config = RunConfig(pipeline=pipeline, sparsity=args.sparsity, epochs=250, device=args.device,
                           **({"update_every": 2, "t_end": 1.0} if scheduled else {}))
        model, optimizer = fresh()
        sparsifier = build_sparsifier(config, model, optimizer, total_steps=250 * STEPS_PER_EPOCH)
        step_times(model, optimizer, x, y, 2, device)  # warm-up, including one update
        times, updated = [], []
        for _ in range(args.steps * 2):
            before = sparsifier.masks.updates
            times += step_times(model, optimizer, x, y, 1, device, warmup=False)
            updated.append(sparsifier.masks.updates > before)
        plain = mean(t for t, u in zip(times, updated) if not u or pipeline == "bsr")
        overhead = (plain - dense_step) / dense_step
        if scheduled:
            update_ms = (mean(t for t, u in zip(times, updated) if u) - plain) * 1e3
            updates_per_epoch = STEPS_PER_EPOCH / defaults.update_every
        else:
            update_ms, updates_per_epoch = 0.0, 0.0  # BSR's rewiring is part of every step
        update_fraction = update_ms / 1e3 / epoch
        total = overhead + update_fraction * updates_per_epoch
        print(f"{pipeline:<10} {overhead:>13.1%} {update_ms:>10.1f} {update_fraction:>12.3%} "
              f"{updates_per_epoch:>14.3f} {total:>11.1%}")


if __name__ == "__main__":
    main()
