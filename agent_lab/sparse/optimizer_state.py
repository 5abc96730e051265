"""Which per-element optimizer state must follow the sparsity mask.

Every optimizer used under a mask declares the names of its per-element state tensors (momentum
buffers, Adam moments, ...). On every step those entries are zeroed at masked-out positions, and at
newly grown positions they are reset to zero, so a pruned or regrown weight never inherits stale
momentum. An optimizer whose state is not registered raises instead of silently leaking.
"""
from __future__ import annotations

from typing import Iterable

import torch

# Per-element state of the optimizers this project uses. Subclasses inherit their parent's entry
# (found through the MRO); a subclass that adds per-element state must register itself.
_REGISTRY: dict[type, tuple[str, ...]] = {
    torch.optim.SGD: ("momentum_buffer",),
    torch.optim.Adam: ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    torch.optim.AdamW: ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
}


class UnknownOptimizerStateError(TypeError):
    """A sparse pipeline was asked to manage an optimizer whose per-element state is unknown."""


def register_optimizer_state(optimizer_class: type, state_names: Iterable[str]) -> None:
    """Declare the per-element state tensors of ``optimizer_class`` (names in ``optimizer.state[p]``)."""
    _REGISTRY[optimizer_class] = tuple(state_names)


def per_element_state_names(optimizer) -> tuple[str, ...]:
    """The registered per-element state names of ``optimizer`` (its class or nearest registered base)."""
    for cls in type(optimizer).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls]
    raise UnknownOptimizerStateError(
        f"{type(optimizer).__name__}: its per-element state is unknown to the sparse pipelines, so pruned or "
        f"grown weights could inherit stale state; declare it with agent_lab.sparse.register_optimizer_state("
        f"{type(optimizer).__name__}, ['state_name', ...]) (known: "
        f"{', '.join(c.__name__ for c in _REGISTRY)})")


@torch.no_grad()
def mask_optimizer_state_(optimizer, param: torch.Tensor, keep: torch.Tensor) -> None:
    """Zero the per-element state of ``param`` wherever ``keep`` is False."""
    state = optimizer.state.get(param)
    if not state:
        return
    for name in per_element_state_names(optimizer):
        value = state.get(name)
        if isinstance(value, torch.Tensor) and value.shape == param.shape:
            value.mul_(keep)
