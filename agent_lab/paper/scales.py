"""The three scales an artifact is reproduced at: ``smoke``, ``cpu`` and ``paper``.

A spec writes its runs at the paper's settings; :meth:`Scale.apply` turns such a config into the
scale's: the paper scale changes nothing but the device, the others shrink data, width and epochs
by the rules below (also stated in the README).

* **epochs**: every run gets the scale's epoch count; schedules are fractions of training, so they
  keep their shape. An epoch budget ``e`` of a ``E``-epoch paper run maps to
  ``max(1, round(e × E_scale / E))`` (:meth:`Scale.budget`): 20, 40, 70, 90, 140, 200 of 200 become
  2, 4, 7, 9, 14, 20 at the cpu scale's 20 epochs.
* **mask-update interval** ``update_every`` (the config's, else the pipeline's default: RigL/SET 100,
  SET-ITOP 1500, RigL-ITOP 4000 steps): a fraction of training like the schedule and the budgets,
  so a run makes as many mask updates as the paper's (interval × total steps / the paper's total
  steps), but never less than a quarter epoch apart, so that grown weights train before the next
  prune decision (:meth:`Scale.update_interval`). At the cpu scale's 79 × 20 steps: RigL/SET 20
  (the quarter-epoch floor; the paper's 100 steps is a quarter of its epoch too), SET-ITOP 24 and
  RigL-ITOP 65, i.e. 65 and 24 updates as in the paper. (Scaling by steps per epoch instead would
  keep updates per epoch but leave RigL-ITOP one update in 20 epochs: no in-time exploration.)
* **data**: the cpu scale trains on a class-balanced 10,000-image subset of the real CIFAR-10 (the
  archive ``$CIFAR10_ARCHIVE`` or ``../shared/data/cifar10-jpeg.tar.gz``, else a torchvision download)
  and tests on 2,000 of its test images; it stands in for every data set of the paper (SVHN,
  CIFAR-100, ImageNet), which the artifacts label. ``smoke`` uses the embedded ``cifar10-mini``.
* **width**: 0.125 at cpu (a VGG-16 of 0.24 M maskable weights, 1/64 of width 1), 0.0625 at smoke.
* **attacks**: smoke trains with 2-step PGD and evaluates with PGD-20 × 2 restarts; cpu and paper
  keep PGD-10 training and PGD-50 × 10 restarts evaluation.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..sparse.pipelines import DEFAULTS, resolved_settings

PAPER_STEPS_PER_EPOCH = {"cifar10": 391, "cifar100": 391, "svhn": 573, "imagenet": 20019}
ARCHIVE_ENV = "CIFAR10_ARCHIVE"
PAPER_ROBUST_EVAL = ("pgd50", 10)


def cifar10_archive() -> Path | None:
    """The real CIFAR-10 archive: ``$CIFAR10_ARCHIVE``, else ``shared/data`` beside the project or the cwd."""
    candidates = [os.environ.get(ARCHIVE_ENV)] if os.environ.get(ARCHIVE_ENV) else []
    here = Path(__file__).resolve().parents[2]
    candidates += [here.parent / "shared" / "data" / "cifar10-jpeg.tar.gz",
                   Path.cwd().parent / "shared" / "data" / "cifar10-jpeg.tar.gz",
                   Path.cwd().parent.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"]
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file():
            return path.resolve()
    return None


@dataclass(frozen=True)
class Scale:
    """How a paper config is shrunk. ``epochs``/``width``/subsets ``None``: the paper's own."""

    name: str
    seeds: int
    description: str
    epochs: int | None = None
    width: float | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    batch_size: int | None = None
    attack_steps: int | None = None
    robust_eval: tuple[str, int] = PAPER_ROBUST_EVAL
    dataset: str | None = None  # the data set standing in for every paper data set

    def epochs_of(self, config: RunConfig) -> int:
        return config.epochs if self.epochs is None else self.epochs

    def budget(self, paper_epoch: int, paper_epochs: int) -> int:
        """The epoch that stands for the paper's budget ``paper_epoch`` of a ``paper_epochs`` run."""
        if self.epochs is None:
            return int(paper_epoch)
        return max(1, min(self.epochs, round(paper_epoch * self.epochs / paper_epochs)))

    def data_fields(self) -> dict:
        if self.dataset is None:
            return {}
        if self.dataset == "cifar10":
            archive = cifar10_archive()
            return {"dataset": "cifar10", "data_root": None if archive is None else str(archive)}
        return {"dataset": self.dataset, "data_root": None}

    def update_interval(self, interval: int, config: RunConfig, batch_size: int) -> int:
        """The paper's mask-update ``interval`` (steps) of ``config`` at this scale: the same number
        of updates over training, at least a quarter epoch apart (module docstring)."""
        steps = math.ceil(self.train_subset / batch_size)
        paper_total = PAPER_STEPS_PER_EPOCH.get(config.dataset, 391) * config.epochs
        same_count = round(interval * steps * (self.epochs or config.epochs) / paper_total)
        return max(1, same_count, round(steps / 4))

    def apply(self, config: RunConfig, device: str = "auto") -> RunConfig:
        """``config`` (written at the paper's settings) at this scale, on ``device``."""
        changes: dict = {"device": device}
        if self.dataset is not None:
            changes.update(self.data_fields())
        for name in ("width", "train_subset", "test_subset", "batch_size"):
            value = getattr(self, name)
            if value is not None:
                changes[name] = value * config.width if name == "width" else value
        if self.epochs is not None:
            changes["epochs"] = self.epochs
            if config.robust_eval_epochs:
                changes["robust_eval_epochs"] = tuple(sorted({self.budget(e, config.epochs)
                                                              for e in config.robust_eval_epochs}))
        interval = (resolved_settings(config).update_every if config.pipeline in DEFAULTS
                    else config.update_every) or 0
        if interval > 1 and self.train_subset is not None:
            changes["update_every"] = self.update_interval(interval, config, changes.get("batch_size",
                                                                                         config.batch_size))
        if config.adversarial != "none" and self.attack_steps is not None:
            changes["attack_steps"] = self.attack_steps
        if config.robust_eval is not None and config.robust_eval != "none":
            changes["robust_eval"], changes["robust_eval_restarts"] = self.robust_eval
            changes["robust_eval_subset"] = None
        return config.replace(**changes)


SCALES: dict[str, Scale] = {
    "smoke": Scale("smoke", seeds=1, epochs=2, width=0.0625, train_subset=256, test_subset=128, batch_size=64,
                   attack_steps=2, robust_eval=("pgd20", 2), dataset="cifar10-mini",
                   description="seconds on a CPU: the code path at toy size, numbers are not results"),
    "cpu": Scale("cpu", seeds=3, epochs=20, width=0.125, train_subset=10000, test_subset=2000, dataset="cifar10",
                 description="a laptop CPU: real CIFAR-10 subset (10k/2k), width 0.125, 20 epochs, 3 seeds"),
    "paper": Scale("paper", seeds=3, description="the paper's settings (App. C): full data, width 1, "
                   "200/250 epochs, for a GPU"),
}


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise ValueError(f"scale: {name!r} is invalid; valid choices: {', '.join(SCALES)}")
    return SCALES[name]
