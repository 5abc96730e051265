"""Structured N:M sparsity: ``n`` connected weights in every group of ``m`` consecutive inputs.

Groups run along the input dimension: for a linear weight ``[out, in]`` each row is cut into
``in / m`` groups; for a conv weight ``[out, in, kh, kw]`` the groups run along ``in`` for every
``(out, kh, kw)``, the layout sparse tensor cores accelerate. The masks are static (sparsity
``1 - n/m``) and plug into ``Sparsifier(..., masks=MaskState(nm_masks(...)))``.
"""
from __future__ import annotations

from typing import Mapping

import torch


def _check_nm(n: int, m: int) -> None:
    for field, value in (("n", n), ("m", m)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{field}: {value!r} is invalid; it must be an integer >= 1")
    if n > m:
        raise ValueError(f"n: {n} is invalid; it must be <= m ({m})")


def _grouped(tensor: torch.Tensor, m: int, name: str) -> torch.Tensor:
    """View of ``tensor`` as ``[..., groups, m]`` with groups along the input dimension."""
    if tensor.dim() == 2:
        rows = tensor
    elif tensor.dim() == 4:
        rows = tensor.permute(0, 2, 3, 1)  # [out, kh, kw, in]
    else:
        raise ValueError(f"layer {name!r}: N:M masks need a linear [out, in] or conv [out, in, kh, kw] "
                         f"weight, got shape {tuple(tensor.shape)}")
    inputs = rows.shape[-1]
    if inputs % m:
        raise ValueError(f"layer {name!r}: its {inputs} inputs are not divisible by m={m}; "
                         f"leave it dense (dense_layers) or choose another m")
    return rows.reshape(*rows.shape[:-1], inputs // m, m)


def _ungrouped(grouped: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if len(shape) == 2:
        return grouped.reshape(shape)
    out, inputs, kh, kw = shape
    return grouped.reshape(out, kh, kw, inputs).permute(0, 3, 1, 2).contiguous()


def nm_masks(params: Mapping[str, torch.Tensor], n: int, m: int) -> dict[str, torch.Tensor]:
    """Keep the ``n`` largest ``|w|`` of every group of ``m``; equal magnitudes keep the lower input."""
    _check_nm(n, m)
    masks = {}
    for name, weight in params.items():
        magnitude = _grouped(weight.detach().abs(), m, name)
        keep = torch.sort(magnitude, dim=-1, descending=True, stable=True).indices[..., :n]
        grouped = torch.zeros(magnitude.shape, dtype=torch.bool, device=weight.device)
        grouped.scatter_(-1, keep, True)
        masks[name] = _ungrouped(grouped, weight.shape)
    return masks


def check_nm(mask: torch.Tensor, n: int, m: int, *, exact: bool = True) -> None:
    """Raise ``ValueError`` unless every group of ``mask`` has exactly ``n`` (at most ``n`` if not
    ``exact``) connected weights."""
    _check_nm(n, m)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask: expected a bool tensor, got {mask.dtype}")
    per_group = _grouped(mask, m, "mask").sum(dim=-1)
    bad = (per_group != n) if exact else (per_group > n)
    if bad.any():
        rule = "exactly" if exact else "at most"
        raise ValueError(f"mask breaks the {n}:{m} pattern: {int(bad.sum())} of {per_group.numel()} groups "
                         f"do not have {rule} {n} connected weights")
