"""VGG-style networks for 32x32 inputs.

Two variants are provided.

``vgg16`` -- the VGG-16 used by BSR-Net (Özdenizci & Legenstein, 2021):
    13 3x3 convolutions (no bias) each followed by batch norm and ReLU, 2x2
    max pooling after convolutions 2, 4, 7 and 10 (four pools, none after the
    last block), so a 32x32 input ends as a 512x2x2 map; then a plain MLP
    2048-256-256-num_classes with ReLU between the layers (no batch norm, no
    dropout).

``vgg-c`` -- VGG-16 configuration C as used in sparse-training work on CIFAR
    (SNIP / sparse momentum / ITOP code bases): 13 convolutions with bias,
    three of them 1x1 (the last of groups 3, 4 and 5), each followed by batch
    norm and ReLU; every convolution, including the 1x1 ones, uses padding 1,
    so each 1x1 convolution grows the map by two pixels; 2x2 max pooling after
    each of the five groups, so a 32x32 input ends as a 512x2x2 map
    (32-16-8-(10)-5-(7)-3-(5)-2); then 2048-512-512-num_classes with
    ReLU followed by BatchNorm1d after each hidden layer.

Both networks end their feature extractor with an ``AdaptiveAvgPool2d(2)``
that is the identity for 32x32 inputs and lets other input sizes through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
from torch import nn

from .common import Normalize, check_positive_int, check_width, init_weights, scaled

__all__ = ["VGG", "VGG16_BSR_CONFIG", "VGG_C_CONFIG", "vgg16", "vgg_c"]

# Layer spec: an int is a 3x3 conv with that many output channels, a
# (kernel_size, channels) tuple is a conv with that kernel, "M" is a 2x2 max pool.
LayerSpec = Union[int, tuple[int, int], str]

VGG16_BSR_CONFIG: tuple[LayerSpec, ...] = (
    64, 64, "M",
    128, 128, "M",
    256, 256, 256, "M",
    512, 512, 512, "M",
    512, 512, 512,
)

VGG_C_CONFIG: tuple[LayerSpec, ...] = (
    64, 64, "M",
    128, 128, "M",
    256, 256, (1, 256), "M",
    512, 512, (1, 512), "M",
    512, 512, (1, 512), "M",
)

# Spatial size of the last feature map for a 32x32 input (both variants).
_FINAL_MAP = 2


def _make_features(
    config: Sequence[LayerSpec], in_channels: int, width: float, conv_bias: bool
) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    channels = in_channels
    for spec in config:
        if spec == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        if isinstance(spec, tuple):
            kernel_size, out = spec
        else:
            kernel_size, out = 3, spec
        out = scaled(out, width)
        layers += [
            nn.Conv2d(channels, out, kernel_size=kernel_size, padding=1, bias=conv_bias),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
        ]
        channels = out
    return nn.Sequential(*layers), channels


class VGG(nn.Module):
    """Normalize -> conv features -> adaptive pool to 2x2 -> flatten -> classifier."""

    def __init__(
        self,
        config: Sequence[LayerSpec],
        *,
        num_classes: int = 10,
        hidden: int = 256,
        classifier_bn: bool = False,
        conv_bias: bool = False,
        width: float = 1.0,
        in_channels: int = 3,
        mean=None,
        std=None,
    ) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        width = check_width(width)
        self.normalize = Normalize(mean, std, channels=in_channels)
        self.features, channels = _make_features(config, in_channels, width, conv_bias)
        self.pool = nn.AdaptiveAvgPool2d(_FINAL_MAP)
        self.flatten = nn.Flatten(1)
        hid = scaled(hidden, width)
        layers: list[nn.Module] = []
        fan_in = channels * _FINAL_MAP * _FINAL_MAP
        for _ in range(2):
            layers += [nn.Linear(fan_in, hid), nn.ReLU(inplace=True)]
            if classifier_bn:
                layers.append(nn.BatchNorm1d(hid))
            fan_in = hid
        layers.append(nn.Linear(fan_in, num_classes))
        self.classifier = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        x = self.features(x)
        x = self.flatten(self.pool(x))
        return self.classifier(x)


def vgg16(num_classes: int, *, width: float = 1.0, in_channels: int = 3, mean=None, std=None) -> VGG:
    """BSR-Net VGG-16: bias-free convs + BN, 4 pools, MLP 2048-256-256-classes."""
    return VGG(
        VGG16_BSR_CONFIG,
        num_classes=num_classes,
        hidden=256,
        classifier_bn=False,
        conv_bias=False,
        width=width,
        in_channels=in_channels,
        mean=mean,
        std=std,
    )


def vgg_c(num_classes: int, *, width: float = 1.0, in_channels: int = 3, mean=None, std=None) -> VGG:
    """VGG-C: convs with bias + BN (three 1x1), 5 pools, MLP 2048-512-512-classes with BN."""
    return VGG(
        VGG_C_CONFIG,
        num_classes=num_classes,
        hidden=512,
        classifier_bn=True,
        conv_bias=True,
        width=width,
        in_channels=in_channels,
        mean=mean,
        std=std,
    )
