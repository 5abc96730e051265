"""Building blocks shared by every model family: input normalisation,
width scaling, argument validation and weight initialisation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import torch
from torch import nn

__all__ = [
    "Normalize",
    "scaled",
    "check_width",
    "check_positive_int",
    "init_weights",
]


def check_width(width: float) -> float:
    """Return ``width`` as a float, raising ``ValueError`` unless it is a finite number > 0."""
    if isinstance(width, bool) or not isinstance(width, Real):
        raise ValueError(f"width must be a finite number > 0, got {width!r}")
    width = float(width)
    if not math.isfinite(width) or width <= 0.0:
        raise ValueError(f"width must be a finite number > 0, got {width!r}")
    return width


def check_positive_int(value: int, field: str) -> int:
    """Return ``value`` if it is an int >= 1, else raise ``ValueError`` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{field} must be an integer >= 1, got {value!r}")
    return value


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels`` multiplied by ``width``, rounded, and at least 1."""
    width = check_width(width)
    return max(1, int(round(channels * width)))


def _as_channel_tensor(values, field: str, channels: int | None) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        t = values.detach().to(dtype=torch.float32).flatten().clone()
    elif isinstance(values, Real) and not isinstance(values, bool):
        t = torch.tensor([float(values)], dtype=torch.float32)
    elif isinstance(values, Sequence) and not isinstance(values, str):
        try:
            t = torch.tensor([float(v) for v in values], dtype=torch.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{field} must be a number or a sequence of numbers, got {values!r}") from exc
    else:
        raise ValueError(f"{field} must be a number or a sequence of numbers, got {values!r}")
    if t.numel() == 0:
        raise ValueError(f"{field} must not be empty")
    if not torch.isfinite(t).all():
        raise ValueError(f"{field} must contain finite numbers, got {values!r}")
    if channels is not None and t.numel() not in (1, channels):
        raise ValueError(
            f"{field} must have 1 or in_channels={channels} entries, got {t.numel()}"
        )
    return t


class Normalize(nn.Module):
    """Per-channel standardisation ``(x - mean) / std`` of an NCHW batch.

    With ``mean`` and ``std`` both ``None`` the module is the identity (no
    buffers are created).  Otherwise both must be given, as a number or a
    per-channel sequence/tensor; ``std`` entries must be > 0.  The statistics
    are buffers, so they follow ``.to()``/``.cuda()``, but they are
    non-persistent: they are fixed by construction, and leaving them out of
    ``state_dict`` keeps checkpoints interchangeable between models that differ
    only in their normalisation.
    """

    mean: torch.Tensor | None
    std: torch.Tensor | None

    def __init__(self, mean=None, std=None, channels: int | None = None) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("mean and std must be given together (both None disables normalisation)")
        if mean is None:
            self.register_buffer("mean", None, persistent=False)
            self.register_buffer("std", None, persistent=False)
            return
        mean_t = _as_channel_tensor(mean, "mean", channels)
        std_t = _as_channel_tensor(std, "std", channels)
        if (std_t <= 0).any():
            raise ValueError(f"std must be > 0 in every channel, got {std!r}")
        if mean_t.numel() != std_t.numel() and 1 not in (mean_t.numel(), std_t.numel()):
            raise ValueError(
                f"mean and std must have the same number of entries, got {mean_t.numel()} and {std_t.numel()}"
            )
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std_t.view(1, -1, 1, 1), persistent=False)

    @property
    def enabled(self) -> bool:
        return self.mean is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            return x
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        if self.mean is None:
            return "identity"
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def init_weights(model: nn.Module) -> nn.Module:
    """He initialisation for the whole model, in place.

    * ``nn.Conv2d``: Kaiming normal, fan_out mode, ReLU gain; bias zero.
    * ``nn.Linear``: Kaiming normal, fan_in mode, ReLU gain; bias zero.
    * batch norm: weight one, bias zero.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model
