"""Robust accuracy during training: the ``robust_acc`` history column.

Every ``eval_every`` epochs the monitor attacks a fixed test subset (``robust_eval_subset``
examples drawn once with the run seed, so every epoch sees the same examples); at the last epoch
it attacks the whole test set. With ``robust_eval_epochs`` set it attacks the whole test set at
those epochs only (and the last). The number of examples is logged as ``robust_n``. In a run split
over several ranks every rank attacks the whole set: the same numbers as one process, without the
ranks' speed-up.
"""
from __future__ import annotations

import torch

from ..data import InMemoryLoader
from .attacks import PGD, named_attack
from .evaluation import RobustResult, robust_evaluate

# Default in-training robust evaluation of adversarial runs (none for standard training).
DEFAULT_ROBUST_EVAL = "pgd20"


def resolved_robust_eval(config) -> str:
    if config.robust_eval is not None:
        return config.robust_eval
    return "none" if config.adversarial == "none" else DEFAULT_ROBUST_EVAL


class RobustMonitor:
    def __init__(self, attack: PGD, test_loader, *, restarts: int = 1, subset: int | None = None,
                 seed: int = 0, epochs: tuple[int, ...] = ()) -> None:
        self.attack, self.restarts, self.seed = attack, restarts, seed
        self.epochs = tuple(epochs)  # when set: only these epochs (and the last), on the whole test set
        # Data-parallel ranks each attack the whole set (identical results, as one process): the
        # random starts are drawn per batch of still-robust examples, which slices cannot reproduce.
        test_loader = test_loader.unsharded() if getattr(test_loader, "shard", (0, 1))[1] > 1 else test_loader
        self.full = test_loader
        self.partial = test_loader
        images = getattr(test_loader, "images", None)
        if subset is not None and images is not None and subset < len(test_loader.labels):
            g = torch.Generator().manual_seed(seed)
            keep = torch.randperm(len(test_loader.labels), generator=g)[:subset].sort().values.to(images.device)
            self.partial = InMemoryLoader(images[keep], test_loader.labels[keep], test_loader.batch_size,
                                          shuffle=False, augment=False, device=images.device)
        self.last: RobustResult | None = None

    def due(self, epoch: int) -> bool:
        """Whether this evaluation epoch attacks (always, unless ``epochs`` names the ones that do)."""
        return not self.epochs or epoch in self.epochs

    def __call__(self, model: torch.nn.Module, final: bool = False) -> dict[str, float]:
        loader = self.full if final or self.epochs else self.partial
        self.last = robust_evaluate(model, loader.epoch(0), self.attack, restarts=self.restarts, seed=self.seed,
                                    total=len(loader))
        return {"robust_acc": self.last.robust_acc, "robust_n": self.last.n}


def build_robust_monitor(config, test_loader) -> RobustMonitor | None:
    name = resolved_robust_eval(config)
    if name == "none":
        return None
    # The evaluated network is the eval-mode one; attack_bn is the training attack's setting (a
    # train-mode attack on test batches would also depend on their composition, and the test set
    # may be stored sorted by class).
    attack = named_attack(name, config.epsilon, bn_mode="eval")
    return RobustMonitor(attack, test_loader, restarts=config.robust_eval_restarts,
                         subset=config.robust_eval_subset, seed=config.seed, epochs=config.robust_eval_epochs)
