"""Leaving the caller's state alone: module state, modes, RNG replay, perturbed copies.

Every diagnostic runs inside :func:`isolated`: on exit the global RNG states (torch, CUDA when
initialised, Python, NumPy) and, for every model involved, its buffers (BN running statistics,
``num_batches_tracked``), the train/eval flag of every submodule and every ``.grad`` are exactly
as before. Parameters are never written: perturbed weights live in ``copy.deepcopy`` copies.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..isolation import copy_without_grads, module_preserved, rng_preserved
from ..rng import capture_rng_state, restore_rng_state
from ._gradients import ActiveSet


@contextlib.contextmanager
def isolated(*models: nn.Module) -> Iterator[None]:
    """Restore RNG states and each model's buffers, modes and ``.grad`` on exit."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(rng_preserved())
        seen: set[int] = set()
        for m in models:
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                stack.enter_context(module_preserved(m))
        yield


def set_modes(model: nn.Module, bn_mode: str, reference: nn.Module | None = None) -> None:
    """Copy ``reference``'s per-module flags onto ``model`` (same architecture), then put BatchNorm
    layers in train (``"train"``: batch statistics) or eval (``"eval"``: running statistics) mode;
    ``"keep"`` leaves them as they are. Call only inside :func:`isolated` (flags are restored)."""
    if reference is not None and reference is not model:
        mods, refs = list(model.modules()), list(reference.modules())
        if len(mods) == len(refs):
            for m, r in zip(mods, refs):
                m.training = r.training
    if bn_mode == "keep":
        return
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.training = bn_mode == "train"


def perturbed_copies(model: nn.Module, active: ActiveSet, sigma: float, count: int, seed: int,
                     active_only: bool) -> list[nn.Module]:
    """``count`` copies at θ + σ·ε, ε ~ N(0, I) from a private CPU generator seeded by ``seed``.

    ε is drawn for every trainable parameter, in ``named_parameters()`` order, replicate after
    replicate (float32, or float64 for float64 parameters), so the draws do not depend on
    ``active_only``; with ``active_only`` it is zeroed at masked entries (masked weights keep their
    value, 0 in a sparse model).
    """
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    copies = []
    for _ in range(count):
        clone = copy_without_grads(model)
        with torch.no_grad():
            for name, p in zip(active.names, active.params_of(clone, "copy")):
                dtype = torch.float64 if p.dtype == torch.float64 else torch.float32
                noise = torch.randn(p.shape, generator=generator, dtype=dtype).to(device=p.device, dtype=p.dtype)
                mask = active.mask_of(name)
                if active_only and mask is not None:
                    noise.mul_(mask)
                p.add_(noise, alpha=sigma)
        copies.append(clone)
    return copies


def same_randomness(passes: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run ``passes`` from the same RNG state (stochastic layers draw the same masks in each) and
    leave the state where the first pass left it, as if only that pass had run."""
    start = capture_rng_state()
    results, end = [], None
    for i, run in enumerate(passes):
        if i:
            restore_rng_state(start)
        results.append(run())
        if i == 0:
            end = capture_rng_state()
    if end is not None and len(passes) > 1:
        restore_rng_state(end)
    return results
