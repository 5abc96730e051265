"""``InMemoryLoader``: replayable, augmented mini-batches from uint8 images held on the device."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch

from ..distributed import shard_bounds
from .augment import crop_flip, crop_flip_params
from .bundle import DatasetBundle, Split
from .sampling import check_batch_size, check_step, epoch_order, num_batches
from .seeding import BATCH_AUGMENT, FULL_PASS_AUGMENT, FULL_PASS_PERMUTATION, PERMUTATION, torch_generator

Batch = tuple[torch.Tensor, torch.Tensor]

# Random streams (order, augmentation) of each kind of pass: a full-data pass never shares a
# permutation or an augmentation draw with the training epoch of the same index.
STREAMS = {"train": (PERMUTATION, BATCH_AUGMENT), "full-pass": (FULL_PASS_PERMUTATION, FULL_PASS_AUGMENT)}


class InMemoryLoader:
    """Mini-batches ``(x, y)``: ``x`` float32 in [0, 1] on ``device``, ``y`` int64.

    The uint8 images are moved to ``device`` once. With ``augment``, every image is cropped
    from its ``pad``-pixel zero-padded version at a random offset and, with ``flip``, mirrored
    left-right with probability 1/2; this runs as tensor ops on the whole batch.

    Everything is a function of ``(seed, epoch, step)``: the order of epoch ``e`` comes from a
    generator seeded by ``(seed, e)`` and the augmentation of its step ``s`` from one seeded by
    ``(seed, e, s)``, so ``batch(e, s)`` reproduces exactly what ``epoch(e)`` yields at step ``s``.
    Torch's global random state is never used. ``stream`` names the random streams: ``"train"``
    for training epochs, ``"full-pass"`` for the extra passes over the training set (AGENT's
    refresh, diagnostics), whose orders are independent of the training epochs'.

    ``shard=(rank, world_size)`` (data-parallel training): every rank draws the same global batch,
    order and augmentation included, and keeps its own contiguous slice of it
    (:func:`agent_lab.distributed.shard_bounds`), so the ranks' slices together are exactly the
    one-process batch. ``len`` and ``num_examples`` stay those of the global epoch.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        augment: bool = True,
        flip: bool = True,
        pad: int = 4,
        drop_last: bool = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
        stream: str = "train",
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        Split(images, labels)  # validates dtypes, shapes and lengths
        check_batch_size(batch_size)
        if not isinstance(pad, int) or pad < 0:
            raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if stream not in STREAMS:
            raise ValueError(f"stream: {stream!r} is invalid; valid choices: {', '.join(STREAMS)}")
        self.stream = stream
        self._permutation_stream, self._augment_stream = STREAMS[stream]
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle, self.augment, self.flip, self.pad = shuffle, augment, flip, pad
        self.drop_last, self.seed = drop_last, seed
        rank, world_size = shard
        shard_bounds(1, rank, world_size)  # validates the shard
        self.shard = (int(rank), int(world_size))
        self._cached_order: tuple[int, torch.Tensor | None] | None = None

    def __len__(self) -> int:
        return num_batches(len(self.labels), self.batch_size, self.drop_last)

    @property
    def num_examples(self) -> int:
        """Examples one epoch yields (the data size, less the dropped tail with ``drop_last``)."""
        return len(self) * self.batch_size if self.drop_last else len(self.labels)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """All batches of ``epoch``, in order."""
        for step in range(len(self)):
            yield self.batch(epoch, step)

    def batch(self, epoch: int, step: int) -> Batch:
        """Batch ``step`` of ``epoch``, identical to what ``epoch(epoch)`` yields at that step."""
        check_step(step, len(self))
        order = self._order(epoch)
        start, stop = step * self.batch_size, min((step + 1) * self.batch_size, len(self.labels))
        lo, hi = shard_bounds(stop - start, *self.shard)
        if order is None:
            images, labels = self.images[start + lo:start + hi], self.labels[start + lo:start + hi]
        else:
            indices = order[start + lo:start + hi]
            images, labels = self.images[indices], self.labels[indices]
        if self.augment:  # drawn for the global batch, then this shard's part
            generator = torch_generator(self._augment_stream, self.seed, epoch, step)
            rows, cols, flips = crop_flip_params(stop - start, self.pad, self.flip, generator)
            images = crop_flip(images, rows[lo:hi], cols[lo:hi], flips[lo:hi], self.pad)
        return images.to(torch.float32).div_(255.0), labels

    def unsharded(self) -> "InMemoryLoader":
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

    def _order(self, epoch: int) -> torch.Tensor | None:
        if self._cached_order is None or self._cached_order[0] != epoch:
            order = epoch_order(len(self.labels), self.shuffle, self.seed, epoch, self._permutation_stream)
            self._cached_order = (epoch, None if order is None else order.to(self.device))
        return self._cached_order[1]


def make_loaders(
    bundle: DatasetBundle,
    batch_size: int,
    *,
    eval_batch_size: int = 1024,
    seed: int,
    device: str | torch.device,
    augment: bool = True,
    num_workers: int = 0,
    shard: tuple[int, int] = (0, 1),
):
    """The training loader (shuffled, augmented with ``bundle.flip``) and the test loader
    (natural order, no augmentation) of ``bundle``. ``num_workers`` applies to streaming
    data sets (imagenet) only."""
    check_batch_size(eval_batch_size, "eval_batch_size")
    if isinstance(bundle.train, Split):
        train = InMemoryLoader(bundle.train.images, bundle.train.labels, batch_size, shuffle=True,
                               augment=augment, flip=bundle.flip, seed=seed, device=device, shard=shard)
        test = InMemoryLoader(bundle.test.images, bundle.test.labels, eval_batch_size, shuffle=False,
                              augment=False, seed=seed, device=device, shard=shard)
        return train, test
    from .streaming import StreamingLoader  # deferred for start-up cost: only streamed data sets need it

    common = dict(seed=seed, device=device, num_workers=num_workers, image_size=bundle.image_size, shard=shard)
    train = StreamingLoader(bundle.train, batch_size, shuffle=True, augment=augment, flip=bundle.flip, **common)
    test = StreamingLoader(bundle.test, eval_batch_size, shuffle=False, augment=False, **common)
    return train, test
