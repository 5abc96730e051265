"""Cost of every gradient diagnostic relative to one training epoch, measured in one run.

One epoch of a VGG-16 (``--width``, default 0.25) on ``cifar10-mini`` (4,000 images, batch 128)
with RigL at 90% sparsity and SGD is trained and timed (its ``wall_time``, evaluation excluded).
On the trained model (its masks from the checkpoint, as ``agent-lab diagnose`` does) each
diagnostic is timed once:

* ``gradient_variance``: 20 training batches, σ = 0.015, 1 and 3 replicates;
* ``gradient_correlation``: the whole training set, σ = 0.015, 3 replicates (the clean full
  gradient plus one per replicate);
* ``variance_vs_c``: 20 batches at the model and at a snapshot (a copy with N(0, 0.01²) added to
  the active weights);
* ``per_sample_gradient_variance``: the per-example gradients (``torch.func``) of 256 examples on
  a copy of the model with BatchNorm in eval mode (per-example gradients are undefined with batch
  statistics);
* the in-training cost of ``diagnostics="all"`` with optimizer ``agent``, in the second epoch of a
  2-epoch run: the time spent inside the diagnostics callback's hooks is measured in the run (the
  callback is all that ``diagnostics`` adds), and the epoch without diagnostics is the epoch minus
  that time. ``--two_runs`` also trains the run without diagnostics and reports the measured
  difference of the two second epochs (noisier, and twice the cost).

``passes`` counts example-level forward+backward passes; ``per pass vs training`` is the cost of
one such pass relative to one of the training epoch (1 = as cheap as a training step per example).
On the CPU the benchmark runs on ``--threads`` threads (default 1: on shared cores, OpenMP
spin-waits of multi-threaded kernels make every timing several times slower and erratic; 0 keeps
torch's default).

    python benchmarks/bench_diagnostics.py [--width 0.25] [--device cpu|cuda] [--dataset cifar10-mini]
        [--data_root DIR] [--train_subset N] [--threads 1] [--two_runs]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import torch

from agent_lab import RunConfig, train
from agent_lab.data import full_pass_loader, load_dataset
from agent_lab.diagnostics import (gradient_correlation, gradient_variance, per_sample_gradient_variance,
                                   variance_vs_c)
from agent_lab.build import checkpoint_masks as run_masks
from agent_lab.diagnostics.in_training import DiagnosticsCallback
from agent_lab.runs import CHECKPOINT_FILE, load_checkpoint

BATCHES = 20
SIGMA = 0.015
PER_SAMPLE_EXAMPLES = 256


def timed(fn):
    """(result, seconds) of ``fn()``, synchronising CUDA around it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


@contextlib.contextmanager
def timed_diagnostics_hooks():
    """Seconds spent in the hooks of every DiagnosticsCallback, per epoch index (0-based)."""
    spent: dict[int, float] = defaultdict(float)
    names = ("on_epoch_begin", "before_optimizer_step", "after_optimizer_step")
    originals = {name: getattr(DiagnosticsCallback, name) for name in names}

    def wrap(hook):
        def timed_hook(self, trainer, *args):
            epoch = trainer.state.epoch
            _, seconds = timed(lambda: hook(self, trainer, *args))
            spent[epoch] += seconds
        return timed_hook

    for name, hook in originals.items():
        setattr(DiagnosticsCallback, name, wrap(hook))
    try:
        yield spent
    finally:
        for name, hook in originals.items():
            setattr(DiagnosticsCallback, name, hook)


def second_epoch(history: pd.DataFrame) -> tuple[float, int]:
    return (float(history["wall_time"].iloc[1] - history["wall_time"].iloc[0]),
            int(history["fwd_bwd"].iloc[1] - history["fwd_bwd"].iloc[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dataset", default="cifar10-mini")
    parser.add_argument("--data_root", default=None)
    parser.add_argument("--train_subset", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    parser.add_argument("--two_runs", action="store_true",
                        help="also train AGENT without diagnostics and compare the second epochs")
    args = parser.parse_args()
    if args.threads > 0 and args.device == "cpu":
        torch.set_num_threads(args.threads)
    config = RunConfig(dataset=args.dataset, data_root=args.data_root, train_subset=args.train_subset,
                       model="vgg16", width=args.width, pipeline="rigl", sparsity=0.9, update_every=10,
                       optimizer="sgd", lr=0.05, lr_schedule="constant", epochs=1, batch_size=128,
                       device=args.device)
    device = torch.device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as out:
        run = train(config, out=out, progress=False)
        epoch_s = float(run.history["wall_time"].iloc[0])
        epoch_passes = int(run.history["fwd_bwd"].iloc[0])
        rows.append(("training epoch (rigl 90%, sgd)", epoch_s, epoch_passes))

        checkpoint = load_checkpoint(Path(run.run_dir) / CHECKPOINT_FILE, map_location=device)
        model = run.load_model(device)
        masks = run_masks(checkpoint)
        bundle = load_dataset(config.dataset, config.data_root)
        if config.train_subset is not None:
            bundle = bundle.subset(config.train_subset, None, seed=config.seed)
        images, labels = bundle.train.images, bundle.train.labels
        sampled = full_pass_loader(images, labels, config.batch_size, seed=config.seed, drop_last=True, device=device)
        full = full_pass_loader(images, labels, config.batch_size, seed=config.seed, device=device)
        k = min(BATCHES, len(sampled))
        batches = lambda: (sampled.batch(0, s) for s in range(k))  # noqa: E731
        n_batch = k * config.batch_size

        for replicates in (1, 3):
            _, seconds = timed(lambda: gradient_variance(model, batches, masks=masks, perturb_sigma=SIGMA,
                                                         replicates=replicates))
            rows.append((f"gradient_variance ({k} batches, {replicates} replicate{'s' * (replicates > 1)})",
                         seconds, n_batch * replicates))
        _, seconds = timed(lambda: gradient_correlation(model, lambda: full.epoch(0), sigma=SIGMA, replicates=3,
                                                        masks=masks))
        rows.append(("gradient_correlation (full train set, 3 replicates)", seconds, len(labels) * 4))

        snapshot = copy.deepcopy(model)
        generator = torch.Generator(device="cpu").manual_seed(1)
        with torch.no_grad():
            for name, p in snapshot.named_parameters():
                noise = 0.01 * torch.randn(p.shape, generator=generator).to(p.device, p.dtype)
                if masks is not None and name in masks:
                    noise = noise * masks[name].to(p.device, p.dtype)
                p.add_(noise)
        _, seconds = timed(lambda: variance_vs_c(model, snapshot, batches, masks=masks))
        rows.append((f"variance_vs_c ({k} batches, model + snapshot)", seconds, 2 * n_batch))

        eval_model = copy.deepcopy(model).eval()
        first = [full.batch(0, s) for s in range(-(-PER_SAMPLE_EXAMPLES // config.batch_size))]
        x, y = (torch.cat(parts)[:PER_SAMPLE_EXAMPLES] for parts in zip(*first))
        _, seconds = timed(lambda: per_sample_gradient_variance(eval_model, x, y, masks=masks))
        rows.append((f"per_sample_gradient_variance ({len(y)} examples, BN eval)", seconds, len(y)))

        agent = config.replace(optimizer="agent", epochs=2, diagnostics="all")
        with timed_diagnostics_hooks() as spent:
            seconds, passes = second_epoch(train(agent, out=out, progress=False).history)
        k_train = min(agent.diagnostics_batches, len(sampled))
        extra_passes = 2 * k_train * config.batch_size  # g and g_old on K batches (the correlation is free)
        rows.append(("agent epoch 2, diagnostics=all", seconds, passes))
        rows.append(("  of which diagnostics hooks", spent[1], extra_passes))
        rows.append(("  agent epoch 2 without them", seconds - spent[1], passes - extra_passes))
        if args.two_runs:
            plain_seconds, plain_passes = second_epoch(
                train(agent.replace(diagnostics="none"), out=out, progress=False).history)
            rows.append(("agent epoch 2, diagnostics=none (2nd run)", plain_seconds, plain_passes))
            rows.append(("  measured overhead (difference)", seconds - plain_seconds, passes - plain_passes))

    table = pd.DataFrame(rows, columns=["diagnostic", "seconds", "passes"])
    table["vs epoch"] = table["seconds"] / epoch_s
    per_pass = epoch_s / epoch_passes
    table["per pass vs training"] = (table["seconds"] / table["passes"].clip(lower=1)) / per_pass
    table = table[["diagnostic", "seconds", "vs epoch", "passes", "per pass vs training"]]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"VGG-16 width {args.width:g}, {args.dataset} ({len(labels)} training images), rigl 90%, batch 128, "
          f"device {device_name}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
