"""Which examples make up step ``s`` of epoch ``e``: shared by the in-memory and streaming loaders."""

from __future__ import annotations

import torch

from .seeding import PERMUTATION, torch_generator


def num_batches(num_examples: int, batch_size: int, drop_last: bool) -> int:
    return num_examples // batch_size if drop_last else -(-num_examples // batch_size)


def epoch_order(num_examples: int, shuffle: bool, seed: int, epoch: int,
                stream: int = PERMUTATION) -> torch.Tensor | None:
    """The example order of ``epoch`` (CPU tensor), or None for the natural order."""
    if not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
    generator = torch_generator(stream, seed, epoch)  # validates seed and epoch even unshuffled
    return torch.randperm(num_examples, generator=generator) if shuffle else None


def check_step(step: int, steps: int) -> None:
    if not isinstance(step, int) or not 0 <= step < steps:
        raise IndexError(f"step must be an integer in [0, {steps}) (the batches per epoch), got {step!r}")


def check_batch_size(batch_size: int, field: str = "batch_size") -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"{field} must be a positive integer, got {batch_size!r}")
