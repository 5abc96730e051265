"""The README's cpu-scale diagnostics results, regenerated: Fig. 1 / Table 7 and Fig. 26.

The `cpu` scale of ``notebooks/02_diagnostics.ipynb``: VGG-16 width 0.125 trained 20 epochs (lr
0.05 cosine) on 10,000 real CIFAR-10 training images (2,000 test) from the JPEG archive
(``$CIFAR10_ARCHIVE`` or ``../shared/data/cifar10-jpeg.tar.gz`` beside the project), seed 0.

* ``sweep``: RigL and SET (ΔT = 100) at 0/50/90/99% sparsity with SGD, each final checkpoint
  diagnosed with both perturbation protocols (all weights, active weights only): gradient
  variance over 20 batches and the full-gradient correlation, σ = 0.015, 3 replicates.
* ``fig26``: AGENT with ``diagnostics="correlation"`` on RigL 90% and 99% (ĉ* against the
  correlation of consecutive full gradients, and final accuracy against the SGD runs).

Histories and tidy summaries are written to ``figures/diagnostics/`` (CSV/JSON, small), with the
figures, so the results re-render without retraining; run folders go to ``--out``.

    python benchmarks/cpu_diagnostics.py sweep|fig26 [--out runs-cpu] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from agent_lab import RunConfig, train
from agent_lab.diagnostics import (correlation_table, plot_c_hat_vs_correlation, plot_sparsity_sweep,
                                   sparsity_sweep, sweep_trend)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("sweep", "fig26"))
    parser.add_argument("--out", default="runs-cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    FIGURES.mkdir(parents=True, exist_ok=True)
    {"sweep": run_sweep, "fig26": run_fig26}[args.what](args.out)


if __name__ == "__main__":
    main()
