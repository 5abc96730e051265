"""Full-data passes: every training example once, in a seeded shuffled order, at the training batch size.

Data sets may be stored sorted by class (the bundled ``cifar10-mini``, the image-folder archive and
every stratified subset of them are). A pass that reads them in storage order sees batches of
almost one class each: with BatchNorm in train mode each batch is then normalised with its class's
statistics, so the summed gradient is not the gradient of the training objective, and the spread
of per-batch losses measures the differences between classes instead of minibatch noise. Every
pass over the training set that evaluates losses or gradients (AGENT's refresh: g̃ and the losses
behind ĉ*; the diagnostics of stored runs) therefore draws its batches here:

* :func:`full_pass_loader` -- an :class:`~agent_lab.data.InMemoryLoader` on the ``"full-pass"``
  random streams. ``loader.epoch(key)`` is one pass whose order (and augmentation) is a pure
  function of ``(seed, key)``: the training loop uses the run's seed and the step at which the pass
  runs, so a resumed run replays it exactly.
* :class:`ClassMixing` -- a cheap check of a pass's labels: it recognises batches that are
  dominated by one class far beyond what a random permutation gives, and
  :func:`warn_if_class_sorted` turns that into a :class:`ClassSortedBatchesWarning` for batches
  that come from users' own code.
"""
from __future__ import annotations

import warnings

import torch

from .loader import InMemoryLoader

__all__ = ["ClassMixing", "ClassSortedBatchesWarning", "full_pass_loader", "warn_if_class_sorted"]

# A pass is called class-sorted when its batches' mean majority-class share exceeds the data's own
# majority share by this much. Random batches of >= 16 examples stay below ~0.2 above it (10
# balanced classes, 16 per batch: E[max share] ≈ 0.28 against 0.1); class-sorted storage gives ~0.8.
SORTED_EXCESS = 0.3
MIN_CHECKED_BATCH = 16


class ClassSortedBatchesWarning(UserWarning):
    """A pass over the training data reads batches that are each dominated by one class."""


def full_pass_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int, *, seed: int,
                     augment: bool = False, flip: bool = True, pad: int = 4, drop_last: bool = False,
                     device: str | torch.device = "cpu") -> InMemoryLoader:
    """A loader whose ``epoch(key)`` is one shuffled pass over ``images`` (see the module docstring).

    ``augment`` applies the training augmentation (crop with ``pad``, flip when ``flip``), drawn
    from its own stream; ``drop_last`` drops the last partial batch (equal-size batches).
    """
    return InMemoryLoader(images, labels, batch_size, shuffle=True, augment=augment, flip=flip, pad=pad,
                          drop_last=drop_last, seed=seed, device=device, stream="full-pass")


class ClassMixing:
    """Accumulates the labels of a pass's batches and tells whether the pass reads class-sorted data.

    Only integer label vectors (classification) are looked at; anything else is ignored. Batches
    smaller than 16 are not checked (their majority share is large by chance).
    """

    def __init__(self) -> None:
        self.majority_shares: list[float] = []
        self._counts: torch.Tensor | None = None

    def update(self, y) -> None:
        if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.is_floating_point() or y.is_complex() \
                or y.dtype == torch.bool or y.numel() == 0:
            return
        counts = torch.bincount(y.detach().to("cpu", torch.int64).clamp_min(0))
        if self._counts is None or len(self._counts) < len(counts):
            grown = torch.zeros(len(counts), dtype=torch.int64)
            if self._counts is not None:
                grown[:len(self._counts)] = self._counts
            self._counts = grown
        self._counts[:len(counts)] += counts
        if y.numel() >= MIN_CHECKED_BATCH:
            self.majority_shares.append(float(counts.max()) / y.numel())

    @property
    def mean_majority_share(self) -> float:
        """Mean over checked batches of the share of each batch's most frequent class (NaN if none)."""
        return sum(self.majority_shares) / len(self.majority_shares) if self.majority_shares else float("nan")

    @property
    def overall_majority_share(self) -> float:
        """Share of the most frequent class over the whole pass (NaN before any label)."""
        if self._counts is None or int(self._counts.sum()) == 0:
            return float("nan")
        return float(self._counts.max()) / float(self._counts.sum())

    def sorted_by_class(self) -> bool:
        """True when at least two batches were checked, the pass holds more than one class, and
        batches are dominated by one class far beyond what a random order gives."""
        if len(self.majority_shares) < 2 or self._counts is None or int((self._counts > 0).sum()) < 2:
            return False
        return self.mean_majority_share > self.overall_majority_share + SORTED_EXCESS


def warn_if_class_sorted(mixing: ClassMixing, where: str) -> None:
    """Warn (once per call site) when ``mixing`` saw class-sorted batches."""
    if mixing.sorted_by_class():
        warnings.warn(
            f"{where}: the batches look sorted by class (each batch's majority class makes up "
            f"{mixing.mean_majority_share:.0%} of it on average, against {mixing.overall_majority_share:.0%} "
            "over the whole pass); gradients with train-mode BatchNorm and the per-batch loss statistics "
            "are then biased. Draw the batches in a shuffled order, e.g. "
            "agent_lab.data.full_pass.full_pass_loader(images, labels, batch_size, seed=...).epoch(key).",
            ClassSortedBatchesWarning, stacklevel=3)
