"""The README's cpu-scale diagnostics results, regenerated: Fig. 1 / Table 7 and Fig. 26.

The `cpu` scale of ``notebooks/02_diagnostics.ipynb``: VGG-16 width 0.125 trained 20 epochs (lr
0.05 cosine) on 10,000 real CIFAR-10 training images (2,000 test) from the JPEG archive
(``$CIFAR10_ARCHIVE`` or ``../shared/data/cifar10-jpeg.tar.gz`` beside the project), seed 0.

* ``sweep``: RigL and SET (ΔT = 100) at 0/50/90/99% sparsity with SGD, each final checkpoint
  diagnosed with both perturbation protocols (all weights, active weights only): gradient
  variance over 20 batches and the full-gradient correlation, σ = 0.015, 3 replicates.
* ``fig26``: AGENT with ``diagnostics="correlation"`` on RigL 90% and 99% (ĉ* against the
  correlation of the full gradients at θ and θ̃, and final accuracy against the SGD runs).
* ``passes`` (after ``fig26``): on the final RigL-90% AGENT model, the correlation of two full passes
  at the same weights (clean and augmented, different shuffles), and the old storage-order pass
  (batches of 1,000, sorted by class) against a shuffled one; plus the first-epoch train loss of
  the quickstart config on 1 and 2 threads (CPU kernels are not bitwise stable across thread counts).

Histories and tidy summaries are written to ``figures/diagnostics/`` (CSV/JSON, small), with the
figures, so the results re-render without retraining; run folders go to ``--out``.

    python benchmarks/cpu_diagnostics.py sweep|fig26|passes [--out runs-cpu] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from agent_lab import RunConfig, train
from agent_lab.diagnostics import plot_c_hat_vs_correlation
from agent_lab.experiments import correlation_table, plot_sparsity_sweep, sparsity_sweep, sweep_trend
from agent_lab.reporting import save_figure, save_table

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures" / "diagnostics"


def base_config() -> RunConfig:
    archive = Path(os.environ.get("CIFAR10_ARCHIVE", ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"))
    if not archive.exists():
        raise SystemExit(f"the CIFAR-10 archive is not at {archive}; set CIFAR10_ARCHIVE")
    return RunConfig(dataset="cifar10", data_root=str(archive), train_subset=10000, test_subset=2000,
                     model="vgg16", width=0.125, epochs=20, lr=0.05, lr_schedule="cosine", pipeline="rigl",
                     sparsity=0.9, update_every=100, device="cpu")


def run_sweep(out: str) -> None:
    base = base_config()
    frames = []
    for active_only in (False, True):
        frame = sparsity_sweep(base, out=out, sparsities=(0.0, 0.5, 0.9, 0.99), batches=20, replicates=3,
                               active_only=active_only, progress=True)
        frames.append(frame.assign(protocol="active weights" if active_only else "all weights"))
        tag = "active" if active_only else "all"
        save_table(frame, FIGURES / f"sweep_{tag}")
        save_table(correlation_table(frame), FIGURES / f"table7_correlation_{tag}")
        save_figure(plot_sparsity_sweep(frame), FIGURES / f"fig1_variance_correlation_{tag}")
        trend = {p: {k: v for k, v in c.items() if k != "values"} for p, c in sweep_trend(frame).items()}
        (FIGURES / f"sweep_trend_{tag}.json").write_text(json.dumps(trend, indent=1, default=str))
        print(correlation_table(frame).to_string())


def run_fig26(out: str) -> None:
    base = base_config()
    summary = {}
    for sparsity in (0.9, 0.99):
        agent = train(base.replace(sparsity=sparsity, optimizer="agent", diagnostics="correlation"), out=out)
        sgd = train(base.replace(sparsity=sparsity), out=out)  # the sweep's run (cached when it ran first)
        tag = f"rigl{round(sparsity * 100)}"
        agent.history.to_csv(FIGURES / f"fig26_agent_{tag}_history.csv", index=False)
        sgd.history.to_csv(FIGURES / f"sgd_{tag}_history.csv", index=False)
        save_figure(plot_c_hat_vs_correlation(agent.history), FIGURES / f"fig26_c_hat_vs_correlation_{tag}")
        h = agent.history.dropna(subset=["c_hat_star", "grad_corr"])
        summary[tag] = {
            "pearson": float(h["c_hat_star"].corr(h["grad_corr"])),
            "spearman": float(h["c_hat_star"].corr(h["grad_corr"], method="spearman")),
            "agent_final_test_acc": float(agent.history["test_acc"].iloc[-1]),
            "sgd_final_test_acc": float(sgd.history["test_acc"].iloc[-1]),
            "agent_wall_time": float(agent.history["wall_time"].iloc[-1]),
            "sgd_wall_time": float(sgd.history["wall_time"].iloc[-1]),
        }
        print(tag, summary[tag])
        print(agent.history[["epoch", "c_hat_star", "c_hat_ema", "c", "grad_corr", "test_acc"]].to_string())
    (FIGURES / "fig26_summary.json").write_text(json.dumps(summary, indent=1))


def run_passes(out: str) -> None:
    import tempfile
    import warnings

    from agent_lab.data import InMemoryLoader, full_pass_loader
    from agent_lab.diagnostics import full_gradient, pearson
    from agent_lab.build import checkpoint_masks as run_masks
    from agent_lab.quickstart import QUICKSTART_CONFIG
    from agent_lab.runs import CHECKPOINT_FILE, load_checkpoint
    from agent_lab.train import load_bundle

    run = train(base_config().replace(optimizer="agent", diagnostics="correlation"), out=out)
    model = run.load_model("cpu")
    masks = run_masks(load_checkpoint(Path(run.run_dir) / CHECKPOINT_FILE))
    train_split = load_bundle(run.config).train
    images, labels = train_split.images, train_split.labels
    result = {"run": Path(run.run_dir).name}
    for augment in (False, True):
        loader = full_pass_loader(images, labels, 128, seed=0, augment=augment)
        first = full_gradient(model, lambda: loader.epoch(1), masks=masks)
        second = full_gradient(model, lambda: loader.epoch(2), masks=masks)
        tag = "augmented" if augment else "clean"
        result[f"{tag}_two_passes_correlation"] = pearson(first, second)
        result[f"{tag}_norm"] = float(first.norm())
        result[f"{tag}_difference_norm"] = float((first - second).norm())
        if not augment:
            clean = first
    storage_order = InMemoryLoader(images, labels, 1000, shuffle=False, augment=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the point of this measurement: the class-sorted pass
        old = full_gradient(model, lambda: storage_order.epoch(0), masks=masks)
    result["storage_order_norm"] = float(old.norm())
    result["storage_order_vs_shuffled_correlation"] = pearson(old, clean)
    threads = torch.get_num_threads()
    for n in (1, 2):
        torch.set_num_threads(n)
        with tempfile.TemporaryDirectory() as folder:
            history = train(QUICKSTART_CONFIG.replace(epochs=1), out=folder, progress=False).history
        result[f"quickstart_epoch1_train_loss_{n}_threads"] = float(history["train_loss"].iloc[0])
    torch.set_num_threads(threads)
    print(json.dumps(result, indent=1))
    (FIGURES / "full_pass_noise.json").write_text(json.dumps(result, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("sweep", "fig26", "passes"))
    parser.add_argument("--out", default="runs-cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    FIGURES.mkdir(parents=True, exist_ok=True)
    {"sweep": run_sweep, "fig26": run_fig26, "passes": run_passes}[args.what](args.out)


if __name__ == "__main__":
    main()
