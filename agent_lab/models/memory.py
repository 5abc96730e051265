"""Whether a model of a given width fits in memory, decided before any of it is allocated."""

from __future__ import annotations

import functools
import math
import os

import torch

from .common import check_positive_int, check_width
from .registry import build_model

BYTES_PER_PARAMETER = 4  # float32
GIB = 2**30
# Up to this width the count comes from an exact build on the meta device (shapes only, no memory);
# wider builds could overflow the int64 element count of a weight, so their count is extrapolated.
EXACT_UP_TO = 16.0


class ModelTooLargeError(ValueError):
    """A model's parameters, gradients and optimizer state would not fit in the device's memory."""


def estimate_parameters(name: str, num_classes: int, width: float, in_channels: int = 3) -> int:
    """Parameter count of ``build_model(name, num_classes, width=width)``, without allocating it.

    Exact up to ``EXACT_UP_TO``. Beyond it, every layer holds a product of at most two channel
    counts, each proportional to the width, so the count is the quadratic in width through the exact
    counts at widths 1, 2 and 4.
    """
    width = check_width(width)
    if width <= EXACT_UP_TO:
        return _meta_count(name, num_classes, width, in_channels)
    p1, p2, p4 = (_meta_count(name, num_classes, w, in_channels) for w in (1.0, 2.0, 4.0))
    a = (p4 - 3 * p2 + 2 * p1) // 6
    b = p2 - p1 - 3 * a
    c = p1 - a - b
    return round(a * width**2 + b * width + c)


@functools.lru_cache(maxsize=64)  # repeated runs of one model skip the build
def _meta_count(name: str, num_classes: int, width: float, in_channels: int) -> int:
    with torch.device("meta"):
        model = build_model(name, num_classes, width=width, in_channels=in_channels)
    return sum(p.numel() for p in model.parameters())


def device_memory(device: str | torch.device = "cpu") -> tuple[int, str] | None:
    """``(bytes, label)`` of the memory of ``device`` (``cpu`` or ``cuda[:N]``), or None if unknown."""
    device = torch.device(device)
    if device.type == "cpu":
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # no sysconf, or these names, on this platform
            return None
        return (total, "cpu") if total > 0 else None
    if device.type == "cuda":
        try:
            index = device.index if device.index is not None else torch.cuda.current_device()
            return torch.cuda.mem_get_info(index)[1], f"cuda:{index}"
        except (AssertionError, RuntimeError):  # CUDA not built in or no such device
            return None
    return None


def check_model_fits(
    name: str,
    num_classes: int,
    width: float,
    in_channels: int = 3,
    device: str | torch.device = "cpu",
    copies: int = 4,
) -> int:
    """Raise ``ModelTooLargeError`` when ``copies`` float32 copies of the model's parameters (weights,
    gradients and optimizer state) exceed the total memory of ``device``; return the estimated
    parameter count. Nothing is allocated; when the memory of ``device`` is unknown nothing is checked.
    """
    check_positive_int(copies, "copies")
    parameters = estimate_parameters(name, num_classes, width, in_channels)
    memory = device_memory(device)
    needed = parameters * BYTES_PER_PARAMETER * copies
    if memory is None or needed <= memory[0]:
        return parameters
    available, label = memory
    # The count grows about as width**2 (a little slower), so this width fits.
    largest = _round_down(width * math.sqrt(available / needed))
    raise ModelTooLargeError(
        f"RunConfig.width: {width:g} gives a {name} with ~{parameters:.3g} parameters "
        f"(~{needed / GIB:.3g} GiB for weights, gradients and optimizer state); this machine has "
        f"{available / GIB:.3g} GiB of memory ({label}); choose a width up to ~{largest:g}"
    )


def _round_down(value: float) -> float:
    """``value`` rounded down to two significant digits."""
    step = 10.0 ** (math.floor(math.log10(value)) - 1)
    return math.floor(value / step) * step
