"""``StreamingLoader``: the ``InMemoryLoader`` interface for data sets too large for memory.

Images are decoded and transformed per sample in ``torch.utils.data.DataLoader`` workers. The
augmentation of example ``i`` in epoch ``e`` is seeded by ``(seed, e, i)`` and the order of epoch
``e`` by ``(seed, e)``, so ``batch(e, s)`` replays step ``s`` of ``epoch(e)`` exactly, for any
number of workers. As with ``InMemoryLoader``, ``stream="full-pass"`` draws the order and the
augmentation of AGENT's full-data passes from streams of their own, and ``shard=(rank,
world_size)`` keeps a data-parallel rank's contiguous slice of every global batch: a view depends on
its example's index only, so the ranks' slices together are exactly the one-process batch.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from ..distributed import shard_bounds
from .image_stream import ImageFolderStream
from .sampling import check_batch_size, check_step, epoch_order, num_batches
from .seeding import FULL_PASS_PERMUTATION, FULL_PASS_SAMPLE_AUGMENT, PERMUTATION, SAMPLE_AUGMENT, numpy_generator
from .view_transforms import eval_view, train_view

Batch = tuple[torch.Tensor, torch.Tensor]

# Random streams (order, per-example augmentation) of each kind of pass, as InMemoryLoader's STREAMS.
STREAMS = {"train": (PERMUTATION, SAMPLE_AUGMENT), "full-pass": (FULL_PASS_PERMUTATION, FULL_PASS_SAMPLE_AUGMENT)}


class _EpochViews(Dataset):
    """Example ``i`` of one epoch: its image's view (augmented or evaluation) and label."""

    def __init__(self, stream: ImageFolderStream, *, epoch: int, seed: int, augment: bool, flip: bool, size: int,
                 augment_stream: int = SAMPLE_AUGMENT):
        self.stream, self.epoch, self.seed = stream, epoch, seed
        self.augment, self.flip, self.size = augment, flip, size
        self.augment_stream = augment_stream

    def __len__(self) -> int:
        return len(self.stream)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.stream.load(index)
        if self.augment:
            view = train_view(image, self.size, self.flip,
                              numpy_generator(self.augment_stream, self.seed, self.epoch, index))
        else:
            view = eval_view(image, self.size)
        return view, self.stream.labels[index]


class StreamingLoader:
    """Mini-batches ``(x, y)`` of a streamed split: ``x`` float32 in [0, 1] on ``device``.

    ``augment``: random resized crop to ``image_size`` (+ flip when ``flip``); otherwise resize
    to ``image_size * 256 / 224`` and center-crop ``image_size``.
    """

    def __init__(
        self,
        source: ImageFolderStream,
        batch_size: int,
        *,
        shuffle: bool = True,
        augment: bool = True,
        flip: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
        num_workers: int = 0,
        image_size: int = 224,
        stream: str = "train",
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        check_batch_size(batch_size)
        check_batch_size(image_size, "image_size")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        if stream not in STREAMS:
            raise ValueError(f"stream: {stream!r} is invalid; valid choices: {', '.join(STREAMS)}")
        rank, world_size = shard
        shard_bounds(1, rank, world_size)  # validates the shard
        self.source, self.batch_size = source, batch_size
        self.shuffle, self.augment, self.flip, self.drop_last = shuffle, augment, flip, drop_last
        self.seed, self.device = seed, torch.device(device)
        self.num_workers, self.image_size = num_workers, image_size
        self.stream, self.shard = stream, (int(rank), int(world_size))
        self._permutation_stream, self._augment_stream = STREAMS[stream]

    @property
    def labels(self) -> torch.Tensor:
        """The labels of every example of the split (CPU)."""
        return self.source.labels

    def __len__(self) -> int:
        return num_batches(len(self.source), self.batch_size, self.drop_last)

    @property
    def num_examples(self) -> int:
        """Examples one epoch yields (the data size, less the dropped tail with ``drop_last``)."""
        return len(self) * self.batch_size if self.drop_last else len(self.source)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """All batches of ``epoch``, in order, decoded by ``num_workers`` worker processes."""
        order = epoch_order(len(self.source), self.shuffle, self.seed, epoch, self._permutation_stream)
        batches = [self._step_indices(order, step) for step in range(len(self))]
        loader = DataLoader(
            self._views(epoch),
            batch_sampler=batches,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(0),  # keeps DataLoader off the global RNG
        )
        for images, labels in loader:
            yield self._to_device(images, labels)

    def batch(self, epoch: int, step: int) -> Batch:
        """Batch ``step`` of ``epoch``, identical to what ``epoch(epoch)`` yields at that step."""
        check_step(step, len(self))
        views = self._views(epoch)
        order = epoch_order(len(self.source), self.shuffle, self.seed, epoch, self._permutation_stream)
        samples = [views[i] for i in self._step_indices(order, step)]
        return self._to_device(torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples]))

    def unsharded(self) -> "StreamingLoader":
        """This loader with whole batches on every rank (same data, order and augmentation)."""
        whole = copy.copy(self)
        whole.shard = (0, 1)
        return whole

    def __iter__(self) -> Iterator[Batch]:
        if self.shuffle or self.augment:
            raise TypeError(
                "a shuffling or augmenting loader has no single pass; iterate loader.epoch(e) "
                "so that every epoch gets its own order and augmentation"
            )
        return self.epoch(0)

    def _views(self, epoch: int) -> _EpochViews:
        return _EpochViews(self.source, epoch=epoch, seed=self.seed, augment=self.augment,
                           flip=self.flip, size=self.image_size, augment_stream=self._augment_stream)

    def _step_indices(self, order: torch.Tensor | None, step: int) -> list[int]:
        start, stop = step * self.batch_size, min((step + 1) * self.batch_size, len(self.source))
        lo, hi = shard_bounds(stop - start, *self.shard)  # this rank's slice of the global batch
        start, stop = start + lo, start + hi
        return list(range(start, stop)) if order is None else order[start:stop].tolist()

    def _to_device(self, images: torch.Tensor, labels: torch.Tensor) -> Batch:
        x = images.to(self.device, non_blocking=True).to(torch.float32).div_(255.0)
        return x, labels.to(self.device, non_blocking=True)
