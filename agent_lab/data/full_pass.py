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
                     device: str | torch.device = "cpu", shard: tuple[int, int] = (0, 1)) -> InMemoryLoader:
    """A loader whose ``epoch(key)`` is one shuffled pass over ``images`` (see the module docstring).

    ``augment`` applies the training augmentation (crop with ``pad``, flip when ``flip``), drawn
    from its own stream; ``drop_last`` drops the last partial batch (equal-size batches); ``shard``
    keeps a data-parallel rank's part of each batch (:class:`InMemoryLoader`).
    """
    return InMemoryLoader(images, labels, batch_size, shuffle=True, augment=augment, flip=flip, pad=pad,
                          drop_last=drop_last, seed=seed, device=device, stream="full-pass", shard=shard)


def full_pass_like(loader, batch_size: int, *, augment: bool, seed: int | None = None):
    """A full-data-pass loader over the training data of ``loader`` (an ``InMemoryLoader`` or a
    ``StreamingLoader``): same data, device, flip, padding or image size, and shard, with the
    full-pass random streams; ``augment`` applies the training augmentation (when ``loader`` has one)."""
    from .streaming import StreamingLoader  # deferred for start-up cost: only streamed data sets need it

    if not isinstance(loader, (InMemoryLoader, StreamingLoader)):
        raise TypeError(f"loader: expected an InMemoryLoader or a StreamingLoader, got {type(loader).__name__}")
    seed = loader.seed if seed is None else seed
    augment = bool(augment and loader.augment)
    if isinstance(loader, InMemoryLoader):
        return full_pass_loader(loader.images, loader.labels, batch_size, seed=seed, augment=augment, flip=loader.flip,
                                pad=loader.pad, device=loader.device, shard=loader.shard)
    return StreamingLoader(loader.source, batch_size, shuffle=True, augment=augment, flip=loader.flip, seed=seed,
                           device=loader.device, num_workers=loader.num_workers, image_size=loader.image_size,
                           stream="full-pass", shard=loader.shard)


class ClassMixing:
    """Collects the labels of a pass's batches and tells whether the pass reads class-sorted data.

    Only integer label vectors (classification) are looked at; anything else is ignored. Batches
    smaller than 16 are not checked (their majority share is large by chance). The labels stay
    where they are until a statistic is asked for, then move to the CPU in one transfer (no
    device synchronisation per batch).
    """

    def __init__(self) -> None:
        self._labels: list[torch.Tensor] = []
        self._summary: tuple[list[float], torch.Tensor] | None = None

    def update(self, y) -> None:
        if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.is_floating_point() or y.is_complex() \
                or y.dtype == torch.bool or y.numel() == 0:
            return
        self._labels.append(y.detach())
        self._summary = None

    def _analyse(self) -> tuple[list[float], torch.Tensor]:
        if self._summary is None:
            if not self._labels:
                self._summary = ([], torch.zeros(0, dtype=torch.int64))
            else:
                sizes = [len(y) for y in self._labels]
                labels = torch.cat([y.to(torch.int64) for y in self._labels]).cpu().clamp_min(0)
                counts = torch.bincount(labels)
                shares = [float(torch.bincount(batch).max()) / len(batch)
                          for batch in torch.split(labels, sizes) if len(batch) >= MIN_CHECKED_BATCH]
                self._summary = (shares, counts)
        return self._summary

    @property
    def majority_shares(self) -> list[float]:
        """Per checked batch, the share of its most frequent class."""
        return self._analyse()[0]

    @property
    def mean_majority_share(self) -> float:
        """Mean over checked batches of the share of each batch's most frequent class (NaN if none)."""
        shares = self.majority_shares
        return sum(shares) / len(shares) if shares else float("nan")

    @property
    def overall_majority_share(self) -> float:
        """Share of the most frequent class over the whole pass (NaN before any label)."""
        counts = self._analyse()[1]
        total = int(counts.sum())
        return float(counts.max()) / total if total else float("nan")

    def sorted_by_class(self) -> bool:
        """True when at least two batches were checked, the pass holds more than one class, and
        batches are dominated by one class far beyond what a random order gives."""
        shares, counts = self._analyse()
        if len(shares) < 2 or int((counts > 0).sum()) < 2:
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
