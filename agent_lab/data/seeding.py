"""Deterministic seeds derived from tuples of non-negative integers.

Each purpose has its own stream tag, so the permutation of epoch ``e`` and the
augmentation of step 0 of that epoch never share a seed (``SeedSequence`` pads
short entropy with zeros, so ``(seed, e)`` and ``(seed, e, 0)`` alone would collide).
"""

from __future__ import annotations

import numpy as np
import torch

PERMUTATION = 0
BATCH_AUGMENT = 1
SAMPLE_AUGMENT = 2
SUBSET = 3
FULL_PASS_PERMUTATION = 4  # full-data passes (AGENT's refresh, diagnostics): their own order
FULL_PASS_AUGMENT = 5
FULL_PASS_SAMPLE_AUGMENT = 6  # per-example augmentation of a streamed full-data pass


def derive_seed(stream: int, *key: int) -> int:
    """A 63-bit seed determined by ``key`` (e.g. ``(seed, epoch, step)``) and ``stream``."""
    for value in key:
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"seed components must be non-negative integers, got {key!r}")
    words = np.random.SeedSequence([int(v) for v in key], spawn_key=(stream,)).generate_state(
        2, dtype=np.uint32
    )
    return ((int(words[0]) << 32) | int(words[1])) >> 1


def torch_generator(stream: int, *key: int) -> torch.Generator:
    """A fresh CPU ``torch.Generator`` seeded from ``key``; never touches the global RNG."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(derive_seed(stream, *key))
    return generator


def numpy_generator(stream: int, *key: int) -> np.random.Generator:
    """A fresh numpy ``Generator`` seeded from ``key``."""
    return np.random.default_rng(derive_seed(stream, *key))
