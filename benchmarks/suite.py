"""The speed benchmark suite: one command, one table of ratios measured in one run, one JSON.

    python benchmarks/suite.py [--set cpu|gpu|smoke] [--device D] [--rounds R] [--json PATH]

What it measures (every ratio from epochs timed in the same run, methods interleaved round by
round, the median over rounds, so the load of the moment cancels):

1. **Throughput**: training images/s of an epoch (its AGENT refresh and attacks included) per
   model × method (sgd, agent, the AGENT speed options, at, at+agent) × precision (fp32, bf16,
   bf16 + channels_last). Each trainer runs a warm-up epoch first (AGENT's first epoch has no ĉ*
   forwards), then ``--rounds`` timed rounds of ``epochs_per_round`` epochs.
2. **Ratios against the targets**: AGENT/SGD faithful and with the documented options
   (``c_hat_source=steps`` + ``full_pass_fraction=0.25``), fused/sequential AGENT, AT-AGENT/AT,
   bf16/fp32.
3. **Time- and fwd_bwd-to-accuracy**, SGD against AGENT on the CIFAR-10 subset: from the committed
   cpu-scale histories of Fig. 4 (``figures/fig4/histories_cpu.csv``) on the CPU; trained here on
   the GPU set (``cifar10-mini``, 30 epochs, one seed per arm).
4. **The faithful AGENT's pass arithmetic**: 3 + the forward's share of a forward+backward, what
   AGENT/SGD would be if an epoch were its passes alone (measured per model).
5. **Host synchronisations** (CUDA only): how many an AGENT epoch makes, dense, RigL and BSR.
6. **Projected cost** per family: every distinct run of ``agent-lab reproduce <family> --scale S``
   priced at the measured epoch times (each model at its fastest measured precision): the paper
   scale on the GPU set, the cpu scale (whose models the CPU set times) on the CPU set;
   ``agent-lab list --scale paper --cost --timings <this JSON>`` prints the same per artifact.

Sets: ``cpu`` (this 2-core machine: VGG-16 and VGG-C at width 0.125, 1,024 images per epoch, 256
for adversarial training), ``gpu`` (every model of the paper at width 1 on ``cifar10-mini``'s
4,000 images, resident on the device; under 8 minutes on an H100-class GPU is the aim),
``smoke`` (seconds, for the test suite).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from agent_lab import RunConfig
from agent_lab.train import prepare

ROOT = Path(__file__).resolve().parents[1]

METHODS = {
    "sgd": {},
    "agent": {"optimizer": "agent"},
    "agent-fused": {"optimizer": "agent", "fused_passes": True},
    "agent-steps": {"optimizer": "agent", "c_hat_source": "steps"},
    "agent-options": {"optimizer": "agent", "c_hat_source": "steps", "full_pass_fraction": 0.25},
    "at": {"adversarial": "at", "robust_eval": "none"},
    "at+agent": {"adversarial": "at", "robust_eval": "none", "optimizer": "agent"},
}
PRECISIONS = {"fp32": {}, "bf16": {"precision": "bf16"}, "bf16+cl": {"precision": "bf16", "channels_last": True}}

SETS = {
    "smoke": {"models": [("vgg16", 0.0625)], "images": 256, "at_images": 128, "epochs_per_round": 1, "rounds": 1,
              "methods": ["sgd", "agent", "agent-options", "at", "at+agent"], "precisions": ["fp32", "bf16"],
              "fused_models": [], "tta": None, "projection": None},
    "cpu": {"models": [("vgg16", 0.125), ("vgg-c", 0.125)], "images": 1024, "at_images": 256, "epochs_per_round": 1,
            "rounds": 3, "methods": ["sgd", "agent", "agent-steps", "agent-options", "at", "at+agent"],
            "precisions": ["fp32", "bf16", "bf16+cl"], "fused_models": ["vgg16"], "tta": "stored", "projection": "cpu"},
    "gpu": {"models": [("vgg16", 1.0), ("vgg-c", 1.0), ("resnet18", 1.0), ("resnet34", 1.0), ("resnet50", 1.0),
                       ("wrn-28-4", 1.0)],
            "images": 4000, "at_images": 1000, "epochs_per_round": 2, "rounds": 3,
            "methods": ["sgd", "agent", "agent-options", "at", "at+agent"], "precisions": ["fp32", "bf16", "bf16+cl"],
            "fused_models": ["vgg16", "resnet18", "wrn-28-4"], "tta": {"model": "vgg16", "width": 1.0, "epochs": 30},
            "projection": "paper"},
}
TARGETS = {"cpu": {"agent/sgd": 3.0, "agent-options/sgd": 2.3},
           "gpu": {"agent/sgd": 1.8, "at+agent/at": 1.15, "vgg16 bf16 SGD epoch of 50k (s)": 1.0,
                   "paper scale (GPU-hours)": 150.0}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trainer(model: str, width: float, method: str, precision: str, images: int, device: str):
    config = RunConfig(dataset="cifar10-mini", train_subset=images, test_subset=100, model=model, width=width,
                       epochs=1000, batch_size=128, lr=0.05, lr_schedule="constant", device=device, seed=0,
                       attack_steps=10, **METHODS[method], **PRECISIONS[precision])
    trainer, _ = prepare(config)
    return trainer


def _epoch(trainer) -> tuple[float, int]:
    """Seconds and example passes of one training epoch (its refresh and attacks included)."""
    passes = trainer.state.fwd_bwd
    _sync(trainer.device)
    start = time.perf_counter()
    trainer.train_epoch()
    _sync(trainer.device)
    seconds = time.perf_counter() - start
    trainer.state.epoch += 1
    return seconds, trainer.state.fwd_bwd - passes


def throughput(spec: dict, device: str, rounds: int) -> pd.DataFrame:
    """One row per model × precision × method: median epoch seconds, images/s, passes per image."""
    rows = []
    for model, width in spec["models"]:
        for precision in spec["precisions"]:
            methods = list(spec["methods"])
            if model in spec["fused_models"] and precision == "fp32":
                methods.append("agent-fused")
            trainers, images = {}, {}
            for method in methods:
                n = spec["at_images"] if method.startswith("at") else spec["images"]
                trainers[method], images[method] = _trainer(model, width, method, precision, n, device), n
                _epoch(trainers[method])  # warm-up: allocations, autotuning, AGENT's first refresh
            times: dict[str, list[float]] = {m: [] for m in methods}
            passes: dict[str, int] = {}
            for _ in range(rounds):
                for method in methods:  # interleaved: each round sees the same machine load
                    seconds = 0.0
                    for _ in range(spec["epochs_per_round"]):
                        s, passes[method] = _epoch(trainers[method])
                        seconds += s
                    times[method].append(seconds / spec["epochs_per_round"])
            for method in methods:
                rows.append({"model": model, "width": width, "precision": precision, "method": method,
                             "images": images[method], "epoch_s": statistics.median(times[method]),
                             "images_per_s": images[method] / statistics.median(times[method]),
                             "passes_per_image": passes[method] / images[method],
                             "rounds": times[method]})
            del trainers
    return pd.DataFrame(rows)


def pass_arithmetic(model: str, width: float, device: str, rounds: int = 5) -> dict:
    """AGENT/SGD if an epoch were its passes alone: a training-mode forward costs ``f`` of a
    forward+backward, and the faithful AGENT epoch is step + snapshot gradient + refresh gradient +
    refresh forward, ``3 + f`` SGD passes. Measured epochs come out lower where SGD's epoch also
    carries costs the extra passes do not repeat (the optimizer step, augmentation)."""
    from agent_lab.models import build_model

    dev = torch.device(device)
    net = build_model(model, num_classes=10, width=width).to(dev).train()
    x = torch.rand(128, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (128,), device=dev)
    forward, both = [], []
    for rep in range(rounds + 1):
        _sync(dev)
        start = time.perf_counter()
        with torch.no_grad():
            net(x)
        _sync(dev)
        middle = time.perf_counter()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        _sync(dev)
        end = time.perf_counter()
        if rep:
            forward.append(middle - start)
            both.append(end - middle)
    f = statistics.median(a / b for a, b in zip(forward, both))
    return {"model": model, "width": width, "forward_share": f, "agent_passes": 3 + f}


def sync_check(device: str, model: str, width: float) -> pd.DataFrame | None:
    """CUDA only: host synchronisations an AGENT epoch makes (torch's sync debug mode), per pipeline.

    The refresh reads ĉ*'s losses once and the divergence check reads one value every 20 steps (one
    check late, from pinned memory); BSR's rewiring reads the layers' kept counts once per step (its
    host generator's draws depend on them); anything more is a synchronisation inside the step."""
    import warnings

    if torch.device(device).type != "cuda":
        return None
    rows = []
    for pipeline, extra in (("dense", {}), ("rigl", {"pipeline": "rigl", "sparsity": 0.9}),
                            ("bsr", {"pipeline": "bsr", "sparsity": 0.9})):
        config = RunConfig(dataset="cifar10-mini", test_subset=100, model=model, width=width, epochs=1000,
                           batch_size=128, lr=0.05, lr_schedule="constant", device=device, optimizer="agent",
                           precision="bf16", **extra)
        trainer, _ = prepare(config)
        _epoch(trainer)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                _epoch(trainer)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        messages = [str(w.message).split("\n")[0] for w in caught]
        rows.append({"pipeline": pipeline, "steps": len(trainer.train_loader), "syncs": len(messages),
                     "first": messages[0] if messages else ""})
    return pd.DataFrame(rows)


def _round_ratio(table: pd.DataFrame, model: str, precision: str, a: str, b: str) -> float:
    """Median over rounds of (seconds per image of ``a``) / (seconds per image of ``b``)."""
    rows = table[(table.model == model) & (table.precision == precision)].set_index("method")
    if a not in rows.index or b not in rows.index:
        return math.nan
    ra, rb = rows.loc[a], rows.loc[b]
    return statistics.median((ta / ra.images) / (tb / rb.images) for ta, tb in zip(ra.rounds, rb.rounds))


def ratios(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (model, precision), _ in table.groupby(["model", "precision"], sort=False):
        for name, a, b in (("agent/sgd", "agent", "sgd"), ("agent-steps/sgd", "agent-steps", "sgd"),
                           ("agent-options/sgd", "agent-options", "sgd"), ("fused/sequential", "agent-fused", "agent"),
                           ("at/sgd", "at", "sgd"), ("at+agent/at", "at+agent", "at")):
            value = _round_ratio(table, model, precision, a, b)
            if not math.isnan(value):
                rows.append({"model": model, "precision": precision, "ratio": name, "value": value})
    for (model, method), group in table.groupby(["model", "method"], sort=False):
        base = group[group.precision == "fp32"]
        for _, row in group[group.precision != "fp32"].iterrows():
            if len(base):
                rows.append({"model": model, "precision": row.precision, "ratio": f"{method}: {row.precision}/fp32",
                             "value": float(row.epoch_s / base.epoch_s.iloc[0])})
    return pd.DataFrame(rows)


def time_to_accuracy(source: str | dict | None, device: str) -> pd.DataFrame | None:
    """Mean epochs, seconds and passes for SGD and AGENT to reach accuracy levels both reach: from the
    stored cpu-scale histories (``"stored"``) or trained here (``{"model", "width", "epochs"}``)."""
    from agent_lab.paper.claims import accuracy_levels, epochs_to_reach

    if source is None:
        return None
    if source == "stored":
        path = ROOT / "figures" / "fig4" / "histories_cpu.csv"
        if not path.exists():
            return None
        curves = pd.read_csv(path)
        curves = curves[curves.sparsity == curves.sparsity.min()]
        origin = f"{path.relative_to(ROOT)} (cpu scale, 3 seeds, two runs trained at once on 2 cores)"
    else:
        from agent_lab import train
        import tempfile
        frames = []
        with tempfile.TemporaryDirectory() as out:
            for label, optimizer in (("SGD", "sgd"), ("AGENT", "agent")):
                config = RunConfig(dataset="cifar10-mini", model=source["model"], width=source["width"],
                                   epochs=source["epochs"], batch_size=128, lr=0.05, lr_schedule="cosine",
                                   optimizer=optimizer, device=device, precision="bf16", seed=0)
                history = train(config, out=out, progress=False).history.assign(label=label, seed=0, run=label)
                frames.append(history)
        curves = pd.concat(frames, ignore_index=True)
        curves["test_acc"] *= 100
        origin = (f"cifar10-mini, {source['model']} width {source['width']:g}, {source['epochs']} epochs, bf16, "
                  "seed 0, trained by this suite")
    levels = accuracy_levels(curves, count=4)
    rows = []
    for x in ("epoch", "wall_time", "fwd_bwd"):
        reached = epochs_to_reach(curves, levels, x=x)
        summary = reached.groupby(["label", "level"])["value"].mean().unstack("label")
        for level, row in summary.iterrows():
            rows.append({"x": x, "level": level, **row.to_dict()})
    frame = pd.DataFrame(rows)
    frame.attrs["origin"] = origin
    return frame


def timings_of(table: pd.DataFrame) -> dict:
    """``{model: {"width": w, method: seconds per example-epoch}}`` at each model's fastest precision."""
    timings = {}
    for model, group in table.groupby("model"):
        faithful = group[group.method.isin(["sgd", "agent", "at", "at+agent"])]
        best = faithful[faithful.method == "sgd"].sort_values("epoch_s").precision.iloc[0]
        chosen = faithful[faithful.precision == best]
        timings[model] = {"width": float(chosen.width.iloc[0]), "precision": best,
                          **{row.method: row.epoch_s / row.images for row in chosen.itertuples()}}
    return timings


def projection(timings: dict, scale: str) -> pd.DataFrame:
    from agent_lab.paper.cost import plan_cost
    from agent_lab.paper.families import FAMILIES
    from agent_lab.paper.reproduce import plan

    numeric = {m: {k: v for k, v in t.items() if k != "precision"} for m, t in timings.items()}
    rows, seen = [], set()
    timed_widths = {m: t["width"] for m, t in timings.items()}
    for name, family in FAMILIES.items():
        the_plan = plan(family.ids, scale, device="cpu")
        missing = sorted({run.config.model for run in the_plan.distinct.values()
                          if timed_widths.get(run.config.model) != run.config.width})
        cost = plan_cost(the_plan, out="/nonexistent-run-store", timings=numeric)
        new = [k not in seen for k in the_plan.distinct]
        seen.update(the_plan.distinct)
        rows.append({"family": name, "runs": len(the_plan.distinct), "hours": float(cost.seconds.sum()) / 3600,
                     "hours_not_shared_before": float(cost.seconds[new].sum()) / 3600,
                     "models_not_timed": ", ".join(missing)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=tuple(SETS), default="gpu" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", default=None, help="[default: figures/benchmarks/suite_<set>.json]")
    args = parser.parse_args(argv)
    spec = SETS[args.set]
    started = time.perf_counter()
    device = torch.device(args.device)
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{torch.get_num_threads()}-thread CPU")
    table = throughput(spec, args.device, args.rounds or spec["rounds"])
    ratio_table = ratios(table)
    tta = time_to_accuracy(spec["tta"], args.device)
    syncs = sync_check(args.device, *spec["models"][0])
    floors = pd.DataFrame([pass_arithmetic(model, width, args.device) for model, width in spec["models"]])
    timings = timings_of(table)
    projected = projection(timings, spec["projection"]) if spec["projection"] else None
    pd.set_option("display.width", 200)
    print(f"set {args.set} on {machine}, torch {torch.__version__}; {spec['rounds']} interleaved rounds")
    print("\nthroughput (median epoch)")
    print(table.drop(columns="rounds").to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print("\nratios (median over rounds of per-image times)")
    print(ratio_table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print("\nthe faithful AGENT/SGD in passes alone: 3 + (forward / forward+backward), one batch of 128")
    print(floors.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    targets = TARGETS.get(args.set, {})
    checks = []
    if targets:
        first = table.model.iloc[0]
        for name in ("agent/sgd", "agent-options/sgd", "at+agent/at"):
            if name in targets:
                value = ratio_table[(ratio_table.model == first) & (ratio_table.precision == "fp32")
                                    & (ratio_table.ratio == name)].value
                checks.append({"target": f"{first} fp32 {name}", "limit": targets[name],
                               "measured": float(value.iloc[0]) if len(value) else math.nan})
        if "vgg16 bf16 SGD epoch of 50k (s)" in targets:
            sgd = table[(table.model == "vgg16") & (table.method == "sgd")].sort_values("epoch_s")
            checks.append({"target": f"vgg16 SGD epoch of 50k ({sgd.precision.iloc[0]}, s)", "limit": 1.0,
                           "measured": 50000 / float(sgd.images_per_s.iloc[0])})
        if "paper scale (GPU-hours)" in targets:
            checks.append({"target": "whole paper at paper scale (GPU-hours)", "limit": 150.0,
                           "measured": float(projected.hours_not_shared_before.sum())})
        check_table = pd.DataFrame(checks)
        check_table["met"] = check_table.measured <= check_table.limit
        print("\ntargets")
        print(check_table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if syncs is not None:
        print("\nhost synchronisations in one AGENT epoch (bf16)")
        print(syncs.to_string(index=False))
    if tta is not None:
        print(f"\ntime- and fwd_bwd-to-accuracy, mean over seeds ({tta.attrs['origin']})")
        print(tta.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if projected is not None:
        print(f"\nprojected {spec['projection']}-scale cost on this machine from the measured epochs (each family "
              "alone; shared runs counted once in the total; a model not timed at the scale's width is priced by "
              "timing its passes on this machine's CPU)")
        print(projected.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        print(f"total: {projected.hours_not_shared_before.sum():.1f} h")
    print(f"suite took {time.perf_counter() - started:.0f} s")
    out = Path(args.json) if args.json else ROOT / "figures" / "benchmarks" / f"suite_{args.set}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "set": args.set, "machine": machine, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "throughput": table.to_dict("records"), "ratios": ratio_table.to_dict("records"),
        "targets": checks, "time_to_accuracy": None if tta is None else tta.to_dict("records"),
        "syncs": None if syncs is None else syncs.to_dict("records"), "pass_arithmetic": floors.to_dict("records"),
        "timings": {m: {k: v for k, v in t.items() if k != "precision"} for m, t in timings.items()},
        "timings_precision": {m: t["precision"] for m, t in timings.items()},
        "projection": None if projected is None else projected.to_dict("records"),
        "seconds": time.perf_counter() - started}, indent=1))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
