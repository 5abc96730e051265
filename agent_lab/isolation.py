"""Side-effect-free auxiliary work on a live model: what AGENT's snapshot passes, attacks and
diagnostics use so that training sees neither their randomness nor their BN updates."""
from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import torch
from torch import nn

from .rng import capture_rng_state, restore_rng_state


@contextlib.contextmanager
def rng_preserved() -> Iterator[None]:
    """Put the global RNG states (torch, CUDA, Python, NumPy) back as they were on exit."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


def _set_buffer(module: nn.Module, name: str, tensor: torch.Tensor) -> None:
    owner_name, _, leaf = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    owner._buffers[leaf] = tensor


@contextlib.contextmanager
def module_preserved(module: nn.Module, *, grads: bool = True) -> Iterator[None]:
    """Restore ``module``'s buffers (values and objects), train/eval flags and ``.grad`` on exit."""
    modes = [(m, m.training) for m in module.modules()]
    buffers = [(name, b, b.detach().clone()) for name, b in module.named_buffers()]
    params = list(module.parameters())
    saved_grads = [p.grad for p in params] if grads else None
    if grads:
        for p in params:  # anything a loss_fn accumulates lands in fresh tensors, dropped below
            p.grad = None
    try:
        yield
    finally:
        with torch.no_grad():
            for name, original, saved in buffers:
                try:
                    current = module.get_buffer(name)
                except AttributeError:
                    current = None
                if current is not original:
                    _set_buffer(module, name, original)
                original.copy_(saved)
        for m, flag in modes:
            m.training = flag
        if grads:
            for p, g in zip(params, saved_grads):
                p.grad = g


def copy_without_grads(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` that leaves its ``.grad`` tensors out (they stay on ``model``).

    A compiled ``model`` (``nn.Module.compile``) gives a copy compiled on its own, compiled once here:
    whether a plain deep copy rebinds the compiled forward to the copy is not promised across torch
    versions, and calling the original's would read the original's parameters.
    """
    params = list(model.parameters())
    grads = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        duplicate = copy.deepcopy(model)
        if getattr(model, "_compiled_call_impl", None) is not None:
            duplicate._compiled_call_impl = None
            duplicate.compile()
        return duplicate
    finally:
        for p, g in zip(params, grads):
            p.grad = g
