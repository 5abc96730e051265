"""The registry of architectures: names, builders and ``build_model``."""
from __future__ import annotations

import re
from collections.abc import Callable

from torch import nn

from .common import check_positive_int, check_width
from .imagenet import imagenet_resnet50
from .resnet import resnet18, resnet34, resnet50
from .vgg import vgg16, vgg_c
from .wrn import wide_resnet

MODEL_NAMES: tuple[str, ...] = (
    "vgg16",
    "vgg-c",
    "resnet18",
    "resnet34",
    "resnet50",
    "wrn-28-4",
    "imagenet-resnet50",
)

_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "vgg16": vgg16,
    "vgg-c": vgg_c,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "imagenet-resnet50": imagenet_resnet50,
}

_WRN_PATTERN = re.compile(r"wrn-([0-9]+)-([0-9]+)")


def parse_wrn_name(name: str) -> tuple[int, int] | None:
    """``(depth, widen_factor)`` for a valid ``"wrn-D-K"`` name, else ``None``.

    Valid means depth >= 10 with (depth - 4) % 6 == 0 and widen_factor >= 1.
    """
    if not isinstance(name, str):
        return None
    match = _WRN_PATTERN.fullmatch(name)
    if match is None:
        return None
    depth, k = int(match.group(1)), int(match.group(2))
    if depth < 10 or (depth - 4) % 6 != 0 or k < 1:
        return None
    return depth, k


def is_valid_model_name(name: str) -> bool:
    """True for the names in ``MODEL_NAMES`` and for any valid ``"wrn-D-K"``."""
    return isinstance(name, str) and (name in _BUILDERS or parse_wrn_name(name) is not None)


def _name_error(name) -> ValueError:
    return ValueError(
        f"name must be one of {', '.join(MODEL_NAMES)} "
        f"or 'wrn-<depth>-<k>' with depth >= 10, (depth - 4) % 6 == 0 and k >= 1; got {name!r}"
    )


def build_model(
    name: str,
    num_classes: int,
    *,
    width: float = 1.0,
    in_channels: int = 3,
    mean=None,
    std=None,
) -> nn.Module:
    """Build the network called ``name`` with freshly initialised weights.

    ``mean``/``std`` (a number or one value per input channel) configure the
    leading :class:`Normalize`; leave both ``None`` to feed raw [0, 1] inputs.
    Raises ``ValueError`` for an unknown name, ``width <= 0``, a non-positive
    ``num_classes``/``in_channels`` or inconsistent ``mean``/``std``.
    """
    if not is_valid_model_name(name):
        raise _name_error(name)
    check_positive_int(num_classes, "num_classes")
    check_positive_int(in_channels, "in_channels")
    width = check_width(width)
    kwargs = dict(width=width, in_channels=in_channels, mean=mean, std=std)
    builder = _BUILDERS.get(name)
    if builder is not None:
        return builder(num_classes, **kwargs)
    depth, k = parse_wrn_name(name)  # type: ignore[misc]
    return wide_resnet(depth, k, num_classes, **kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``model`` (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
