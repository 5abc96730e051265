"""Masks as explicit state: which weights of which layers are connected.

Maskable weights are the weights of ``nn.Conv2d`` and ``nn.Linear`` modules (biases and
normalisation layers stay dense). ``MaskState`` holds one boolean mask per maskable weight plus the
ITOP union (every position that has ever been connected), and round-trips through ``state_dict``;
masks are never inferred from zero weights, since grown weights are exactly 0.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

DENSE_LAYER_POLICIES = ("none", "first", "last", "first-last")


def maskable_parameters(model: nn.Module, dense_layers: str = "none") -> dict[str, nn.Parameter]:
    """``{qualified parameter name: weight}`` of every Conv2d/Linear weight, in module order.

    ``dense_layers`` leaves the first maskable layer (``first``), the last (``last``) or both
    (``first-last``) dense, i.e. out of the returned dict.
    """
    if dense_layers not in DENSE_LAYER_POLICIES:
        raise ValueError(f"dense_layers: {dense_layers!r} is invalid; valid choices: {', '.join(DENSE_LAYER_POLICIES)}")
    params = {f"{name}.weight" if name else "weight": module.weight for name, module in model.named_modules()
              if isinstance(module, (nn.Conv2d, nn.Linear))}
    names = list(params)
    if dense_layers in ("first", "first-last") and names:
        params.pop(names[0])
    if dense_layers in ("last", "first-last") and len(names) > 1:
        params.pop(names[-1])
    return params


class MaskState:
    """One boolean mask per maskable weight, the union of all masks so far, and update counters."""

    def __init__(self, masks: dict[str, torch.Tensor]) -> None:
        for name, mask in masks.items():
            if mask.dtype != torch.bool:
                raise TypeError(f"mask {name!r} must be a bool tensor, got {mask.dtype}")
        self.masks = {name: mask.clone() for name, mask in masks.items()}
        self.union = {name: mask.clone() for name, mask in masks.items()}
        self.updates = 0          # mask updates done
        self.last_change = 0.0    # fraction of connections replaced by the last update

    def __iter__(self) -> Iterable[str]:
        return iter(self.masks)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.masks[name]

    def set(self, name: str, mask: torch.Tensor) -> None:
        """Replace the mask of ``name`` (same shape) and extend the union with it."""
        if mask.shape != self.masks[name].shape or mask.dtype != torch.bool:
            raise ValueError(f"mask {name!r}: expected a bool tensor of shape {tuple(self.masks[name].shape)}")
        self.masks[name] = mask
        self.union[name] |= mask

    def nnz(self) -> int:
        return int(sum(int(m.sum()) for m in self.masks.values()))

    def numel(self) -> int:
        return int(sum(m.numel() for m in self.masks.values()))

    def density(self) -> float:
        """Fraction of maskable weights that are connected."""
        return self.nnz() / max(self.numel(), 1)

    def layer_densities(self) -> dict[str, float]:
        return {name: float(m.sum()) / m.numel() for name, m in self.masks.items()}

    def itop_rate(self) -> float:
        """ITOP exploration rate: |union of all masks so far| / #maskable weights."""
        return int(sum(int(u.sum()) for u in self.union.values())) / max(self.numel(), 1)

    @torch.no_grad()
    def apply_(self, params: dict[str, torch.Tensor]) -> None:
        """Zero every masked-out weight of ``params`` in place."""
        for name, mask in self.masks.items():
            params[name].mul_(mask)

    def state_dict(self) -> dict:
        return {"masks": {k: v.clone() for k, v in self.masks.items()},
                "union": {k: v.clone() for k, v in self.union.items()},
                "updates": self.updates, "last_change": self.last_change}

    def load_state_dict(self, state: dict) -> None:
        if set(state["masks"]) != set(self.masks):
            raise KeyError(f"mask names differ: checkpoint has {sorted(state['masks'])}, model has {sorted(self.masks)}")
        for name in self.masks:
            device = self.masks[name].device
            # Copies: ``set`` extends the union in place and must not write into the checkpoint.
            self.masks[name] = state["masks"][name].to(device=device, dtype=torch.bool).clone()
            self.union[name] = state["union"][name].to(device=device, dtype=torch.bool).clone()
        self.updates = int(state["updates"])
        self.last_change = float(state["last_change"])
