"""What reproducing an artifact will cost on this machine, before anything is trained.

The estimate of a run is ``epochs left × passes per epoch × seconds per example pass``:

* **seconds per example pass**: measured by the runs of the same model, width, data set and batch
  size already in the store (``wall_time / fwd_bwd``: training time over the honest pass count,
  the median over runs). Without such a run, a stored run of another model (same input size and
  batch size) is scaled by how much slower the new model's forward-backward is than its own, both
  timed here in one sitting, so the load of the moment cancels out. With no run at all, one forward
  and backward of the run's model (32×32 inputs; 224×224 for ImageNet) is timed here on a batch of
  the run's size (at most 128; the best of three after one warm-up). Timings are cached per machine
  in ``~/.cache/agent_lab/pass_times.json``; an absolute timing is right only on an idle machine
  and over-estimates on a loaded one;
* **passes per epoch** (forward-backward passes per training example, the unit of ``fwd_bwd``):
  1 for SGD/Adam; 4 for the correcting optimizers (the step, the snapshot gradient of each batch,
  the refresh's full gradient and the forwards behind ĉ*: what the README's optimizer benchmark
  measured); 2 for MVR, 5 for AGENT+MVR; adversarial training adds the attack's steps to the
  training pass (and one KL pass for TRADES); the clean test pass counts as a third of a pass per
  test example; a PGD-50 × 10 robust evaluation as ~275 passes per test example (50 steps, then 9
  restarts on the ~half still robust) at each of its epochs;
* **epochs left**: 0 for a cached run, the rest of an interrupted one.

It is a CPU estimate for this machine (its torch threads). For another machine (a GPU), give the
timings that ``benchmarks/suite.py`` measured there (``agent-lab list --cost --timings FILE``): each
training run then costs ``epochs × training examples × seconds per example-epoch`` of its model and
method as measured (an AGENT epoch with its refresh, an AT epoch with its attacks), and evaluation
costs passes at the measured SGD rate (see :func:`timed_example_seconds`).
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .measure import CLASSES
from .plan import Run

CACHE = Path.home() / ".cache" / "agent_lab" / "pass_times.json"
CORRECTING = {"agent": 4.0, "svrg": 4.0, "fixed-c": 4.0, "no-gamma": 4.0, "reduce-lr": 4.0, "mvr": 2.0,
              "agent-mvr": 5.0}
ROBUST_STEPS = {"pgd50": 50, "pgd20": 20, "pgd10": 10}
TRAIN_SIZES = {"cifar10": 50000, "cifar100": 50000, "svhn": 73257, "imagenet": 1281167, "cifar10-mini": 4000}
TEST_SIZES = {"cifar10": 10000, "cifar100": 10000, "svhn": 26032, "imagenet": 50000, "cifar10-mini": 1000}


def passes_per_epoch(config) -> float:
    """Forward-backward passes per training example in one epoch (see the module docstring)."""
    passes = CORRECTING.get(config.optimizer, 1.0)
    if config.adversarial != "none":
        passes += config.attack_steps + (1 if config.adversarial == "trades" else 0)
    return passes


def _sizes(config) -> tuple[int, int]:
    train = config.train_subset or TRAIN_SIZES.get(config.dataset, 50000)
    test = config.test_subset or TEST_SIZES.get(config.dataset, 10000)
    return train, test


def _timed_pass(model: str, width: float, classes: int, image: int, batch: int) -> float:
    """Seconds of one example's forward-backward: a batch of ``batch``, best of 3 after a warm-up."""
    from ..models import build_model

    net = build_model(model, num_classes=classes, width=width)
    x = torch.rand(batch, 3, image, image)
    y = torch.randint(0, classes, (batch,))
    best = float("inf")
    for rep in range(4):
        start = time.perf_counter()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        if rep:
            best = min(best, time.perf_counter() - start)
    return best / batch


def _cached(key: str, compute) -> float:
    key = f"{platform.node()}|{torch.get_num_threads()}|{key}"
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    if key not in cache:
        cache[key] = compute()
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_text(json.dumps(cache, indent=1))
    return float(cache[key])


def seconds_per_pass(model: str, width: float, classes: int, image: int = 32, batch: int = 128) -> float:
    """Seconds of one example's forward-backward (a batch of ``batch``, best of 3), cached per machine."""
    batch = min(batch, 128)
    return _cached(f"{model}|{width:g}|{classes}|{image}|{batch}",
                   lambda: _timed_pass(model, width, classes, image, batch))


def pass_ratio(model: tuple[str, float, int], reference: tuple[str, float, int], image: int = 32,
               batch: int = 128) -> float:
    """How many times slower a forward-backward of ``model`` is than of ``reference`` (each ``(name,
    width, classes)``), both timed in one sitting so that the machine's load cancels; cached."""
    batch = min(batch, 128)

    def ratio() -> float:
        return _timed_pass(*model, image, batch) / _timed_pass(*reference, image, batch)

    return _cached("ratio|{}|{:g}|{}|{}|{:g}|{}|{}|{}".format(*model, *reference, image, batch), ratio)


def measured_pass_seconds(out: str | Path) -> dict[tuple, float]:
    """Seconds per example pass measured by the runs already in the store: ``wall_time / fwd_bwd`` of
    their last row (training time over the honest pass count), median per (model, width, data set, batch)."""
    from ..runs import load_run

    samples: dict[tuple, list[float]] = {}
    for meta in Path(out).glob("*/meta.json"):
        try:
            run = load_run(meta.parent, verify="none")
        except Exception:  # a folder this reader cannot use teaches nothing about speed
            continue
        history = run.history.dropna(subset=["wall_time", "fwd_bwd"]) if len(run.history) else run.history
        if not len(history) or history["fwd_bwd"].iloc[-1] <= 0:
            continue
        config = run.config
        key = (config.model, float(config.width), config.dataset, config.batch_size)
        samples.setdefault(key, []).append(float(history["wall_time"].iloc[-1] / history["fwd_bwd"].iloc[-1]))
    return {key: float(pd.Series(values).median()) for key, values in samples.items()}


def _image_size(dataset: str) -> int:
    return 224 if dataset == "imagenet" else 32


def _pass_seconds(config, measured: dict[tuple, float]) -> float:
    """Seconds per example pass of ``config``: measured in the store, else a stored measurement of
    another model scaled by the timed ratio of the two, else timed here (module docstring)."""
    key = (config.model, float(config.width), config.dataset, config.batch_size)
    if key in measured:
        return measured[key]
    image, classes = _image_size(config.dataset), CLASSES.get(config.dataset, 10)
    references = sorted((ref for ref in measured if ref[3] == config.batch_size and _image_size(ref[2]) == image),
                        key=lambda ref: (ref[0] != config.model, ref[2] != config.dataset, ref))
    if references:
        ref = references[0]
        ratio = pass_ratio((config.model, config.width, classes), (ref[0], ref[1], CLASSES.get(ref[2], 10)),
                           image, config.batch_size)
        return measured[ref] * ratio
    return seconds_per_pass(config.model, config.width, classes, image, config.batch_size)


# How the methods a benchmark times stand for every optimizer and objective: (timed method, factor).
# MVR's epoch is two passes to SGD's one; AGENT+MVR five to AGENT's four; TRADES' attack-plus-loss is
# 12 passes to AT's 11.
_TIMED_AS = {"sgd": ("sgd", 1.0), "adam": ("sgd", 1.0), "mvr": ("sgd", 2.0), "agent-mvr": ("agent", 5 / 4)}
_CORRECTING = ("agent", "svrg", "fixed-c", "no-gamma", "reduce-lr")


def timed_example_seconds(config, timings: dict) -> tuple[float, float] | None:
    """``(seconds per training example per epoch, seconds per example pass)`` of ``config`` from a
    benchmark's ``timings`` (``{model: {"width": w, method: seconds per example-epoch}}``, methods
    ``sgd``, ``agent``, ``at``, ``at+agent``), or None when its model was not timed at its width. The
    pass rate is SGD's."""
    per_model = timings.get(config.model)
    if not per_model or "sgd" not in per_model or float(per_model.get("width", -1)) != float(config.width):
        return None
    optimizer = config.optimizer
    method, factor = _TIMED_AS.get(optimizer, ("agent", 1.0) if optimizer in _CORRECTING else ("sgd", 1.0))
    if config.adversarial != "none":
        method = "at+agent" if method == "agent" else "at"
        factor = 12 / 11 if config.adversarial == "trades" else 1.0
    if method not in per_model:
        return None
    return per_model[method] * factor, per_model["sgd"]


def run_seconds(run: Run, epochs_left: int, measured: dict[tuple, float] | None = None,
                timings: dict | None = None) -> float:
    config = run.config
    if epochs_left <= 0:
        return 0.0
    train, test = _sizes(config)
    timed = timed_example_seconds(config, timings) if timings else None
    if timed is not None:
        per_example, per_pass = timed
        seconds = epochs_left * (train * per_example + test / 3 * per_pass)
    else:
        per_pass = _pass_seconds(config, measured or {})
        seconds = epochs_left * (train * passes_per_epoch(config) + test / 3) * per_pass
    robust = config.robust_eval if config.robust_eval not in (None, "none") else None
    if robust is not None:
        if config.robust_eval_epochs:
            evaluations, examples = len(config.robust_eval_epochs), test
        else:
            evaluations, examples = epochs_left / config.eval_every, min(test, config.robust_eval_subset or test)
        steps = ROBUST_STEPS.get(robust, 50)
        seconds += evaluations * examples * steps * (1 + 0.5 * (config.robust_eval_restarts - 1)) * per_pass
    if run.arm.driver == "hydra":  # pre-train, prune (a fifth), fine-tune
        seconds *= 2.2
    return seconds


def load_timings(path: str | Path) -> dict:
    """The ``timings`` a ``benchmarks/suite.py`` JSON holds (``{model: {method: seconds per example-epoch}}``)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data.get("timings"), dict):
        raise ValueError(f"{path}: no 'timings' mapping (write it with benchmarks/suite.py)")
    return data["timings"]


def plan_cost(the_plan, out: str | Path = "runs", timings: dict | None = None) -> pd.DataFrame:
    """Per distinct run of ``the_plan``: state, epochs left and the estimated seconds (on this machine,
    or on the machine ``timings`` were measured on)."""
    from .reproduce import run_state
    from ..runs import load_run, run_dir_for

    measured = measured_pass_seconds(out)
    rows: list[dict[str, Any]] = []
    for key, run in the_plan.distinct.items():
        state = run_state(run, out)
        left = run.config.epochs
        if state in ("completed", "diverged"):
            left = 0
        elif state in ("interrupted", "queued", "running"):  # what its history already holds is not paid again
            try:
                left = run.config.epochs - len(load_run(run_dir_for(run.config, out), verify="none").history)
            except Exception:  # not begun, or being written: all of it is left
                pass
        rows.append({"run": run.config.run_name(), "state": state, "epochs_left": left,
                     "seconds": run_seconds(run, left, measured, timings)})
    return pd.DataFrame(rows, columns=["run", "state", "epochs_left", "seconds"])


def format_seconds(seconds: float) -> str:
    if seconds != seconds:  # nan: no estimate
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
