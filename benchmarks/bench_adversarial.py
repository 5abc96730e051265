"""Cost of adversarial training and robust evaluation, measured in one run.

1. One training epoch with AT (PGD-10) and TRADES (KL PGD-10) against one standard epoch (second
   epoch of a two-epoch run, so every recurring cost is included; ``fwd_bwd`` per epoch beside it).
2. PGD-20 and PGD-50 × 10 restarts on the test set against one clean evaluation pass, on the
   AT-trained model (restarts only attack the examples still robust, so the cost depends on how
   robust the model is: the printed ``passes`` are the attack's forward+backward passes).

    python benchmarks/bench_adversarial.py [--width 0.25] [--device cpu|cuda] [--dataset cifar10-mini]
        [--test_subset 1000]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import pandas as pd
import torch

from agent_lab import RunConfig, train
from agent_lab.adversarial import named_attack, robust_evaluate
from agent_lab.train import evaluate_model, prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dataset", default="cifar10-mini")
    parser.add_argument("--data_root", default=None)
    parser.add_argument("--train_subset", type=int, default=None)
    parser.add_argument("--test_subset", type=int, default=1000)
    args = parser.parse_args()
    base = RunConfig(dataset=args.dataset, data_root=args.data_root, model="vgg16", width=args.width, epochs=2,
                     batch_size=128, lr=0.05, lr_schedule="constant", device=args.device, robust_eval="none",
                     train_subset=args.train_subset, test_subset=args.test_subset)
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for adversarial in ("none", "at", "trades"):
            run = train(base.replace(adversarial=adversarial), out=out, progress=False)
            h = run.history
            rows.append({"what": f"train epoch, {adversarial}", "seconds": h.wall_time.iloc[1] - h.wall_time.iloc[0],
                         "passes": int(h.fwd_bwd.iloc[1] - h.fwd_bwd.iloc[0])})
            if adversarial == "at":
                model = run.load_model(args.device)
        trainer, _ = prepare(base)
        loader = trainer.test_loader
        start = time.perf_counter()
        evaluate_model(model, loader)
        clean = time.perf_counter() - start
        rows.append({"what": "clean evaluation", "seconds": clean, "passes": 0})
        for name, restarts in (("pgd20", 1), ("pgd50", 10)):
            result = robust_evaluate(model, loader.epoch(0), named_attack(name, base.epsilon), restarts=restarts)
            rows.append({"what": f"{name} x {restarts} evaluation (robust acc {result.robust_acc:.3f}, "
                                 f"clean {result.clean_acc:.3f})", "seconds": result.seconds, "passes": result.passes})
    table = pd.DataFrame(rows)
    standard_epoch = table.seconds.iloc[0]
    table["vs_standard_epoch"] = table.seconds / standard_epoch
    table["vs_clean_eval"] = table.seconds / clean
    print(f"VGG-16 width {args.width:g}, {args.dataset} (test {args.test_subset}), batch 128, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
