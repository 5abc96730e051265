"""The containers every data-set loader returns: ``Split`` and ``DatasetBundle``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import torch

from .stratify import stratified_indices


@dataclass
class Split:
    """One split held in memory: uint8 images ``[N, C, H, W]`` and int64 labels ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"Split.images must be a uint8 tensor [N, C, H, W], got {self.images.dtype} "
                f"with shape {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise ValueError(
                f"Split.labels must be an int64 tensor [N], got {self.labels.dtype} "
                f"with shape {tuple(self.labels.shape)}"
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"Split has {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: torch.Tensor) -> "Split":
        """The examples at ``indices``, in that order."""
        return Split(self.images[indices], self.labels[indices])


class SplitLike(Protocol):
    """What ``DatasetBundle`` needs of a split: in-memory ``Split`` or a streaming one."""

    labels: torch.Tensor

    def __len__(self) -> int: ...

    def take(self, indices: torch.Tensor) -> "SplitLike": ...


@dataclass
class DatasetBundle:
    """A data set ready for training: both splits plus what the pipeline needs to know.

    ``mean``/``std`` are per channel in [0, 1] pixel space; ``flip`` says whether a horizontal
    flip is part of the training augmentation for this data set.
    """

    name: str
    train: Split
    test: Split
    num_classes: int
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool
    image_size: int

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> "DatasetBundle":
        """A class-stratified, deterministic subset (``None`` keeps a split whole).

        A size outside 1..len(split) raises ``ValueError`` naming the RunConfig field that sets it.
        """
        return replace(
            self,
            train=self._take_stratified(self.train, n_train, seed, "train_subset", "training"),
            test=self._take_stratified(self.test, n_test, seed, "test_subset", "test"),
        )

    def _take_stratified(self, split: SplitLike, n: int | None, seed: int, field: str, which: str) -> SplitLike:
        if n is None:
            return split
        if not 1 <= n <= len(split):
            raise ValueError(
                f"RunConfig.{field}: {n!r} is invalid; the {which} split of {self.name} has {len(split)} examples, "
                f"so choose 1..{len(split)} (or leave it unset to keep them all)"
            )
        return split.take(stratified_indices(split.labels, n, seed))


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 ``[N, C, H, W]`` images, in [0, 1] pixel space."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].to(torch.float64).div_(255.0)
        total += block.sum(dim=(0, 2, 3))
        total_sq += block.square().sum(dim=(0, 2, 3))
    count = images.numel() / channels
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
