"""Wall-clock per epoch of every optimizer relative to SGD, dense and RigL-90%, measured in one run.

Each run trains two epochs of a VGG-16 (``--width``, default 0.25) on ``cifar10-mini`` (4,000
images, batch 128) on the CPU and times its second epoch, which contains every recurring cost: the
training steps, the snapshot gradients and, for the AGENT family, the full-gradient refresh with
its ĉ* forwards. ``fwd_bwd`` per epoch is printed beside the time.

    python benchmarks/bench_optimizers.py [--width 0.25] [--device cpu|cuda] [--dataset cifar10-mini]
"""
from __future__ import annotations

import argparse
import tempfile

import pandas as pd
import torch

from agent_lab import RunConfig, train
from agent_lab.optim.correction import OPTIMIZERS



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dataset", default="cifar10-mini")
    parser.add_argument("--data_root", default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for pipeline in ("dense", "rigl"):
            for optimizer in OPTIMIZERS:
                config = RunConfig(dataset=args.dataset, data_root=args.data_root, model="vgg16", width=args.width,
                                   epochs=2, batch_size=128, lr=1e-3 if optimizer == "adam" else 0.05,
                                   momentum=0.0 if optimizer in ("mvr", "agent-mvr") else 0.9,
                                   lr_schedule="constant", optimizer=optimizer, device=args.device,
                                   **({"pipeline": "rigl", "sparsity": 0.9, "update_every": 10}
                                      if pipeline == "rigl" else {}))
                history = train(config, out=out, progress=False).history
                epoch_time = history["wall_time"].iloc[1] - history["wall_time"].iloc[0]
                epoch_passes = history["fwd_bwd"].iloc[1] - history["fwd_bwd"].iloc[0]
                rows.append({"pipeline": pipeline, "optimizer": optimizer, "epoch_s": epoch_time,
                             "fwd_bwd/epoch": int(epoch_passes)})
    table = pd.DataFrame(rows)
    sgd = table[table.optimizer == "sgd"].set_index("pipeline")
    table["time_vs_sgd"] = table.apply(lambda r: r.epoch_s / sgd.loc[r.pipeline, "epoch_s"], axis=1)
    table["passes_vs_sgd"] = table.apply(lambda r: r["fwd_bwd/epoch"] / sgd.loc[r.pipeline, "fwd_bwd/epoch"], axis=1)
    print(f"VGG-16 width {args.width:g}, {args.dataset}, batch 128, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
