"""Wide residual networks WRN-depth-k (Zagoruyko & Komodakis, 2016) for 32x32 inputs.

A 3x3 stem convolution with 16 channels, three groups of ``(depth - 4) / 6``
pre-activation blocks with 16k, 32k and 64k channels (strides 1, 2, 2), a
final BN-ReLU, global average pooling and a linear layer.  Each block computes
``BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3``; when the block changes the
channel count or the resolution its shortcut is a 1x1 convolution applied to
the pre-activated input, otherwise the shortcut is the raw input.  All
convolutions are bias-free.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .common import Normalize, check_positive_int, check_width, init_weights, scaled

__all__ = ["PreActBlock", "WideResNet", "wide_resnet", "check_wrn_config"]


def check_wrn_config(depth: int, widen_factor: int) -> None:
    """Raise ``ValueError`` unless depth >= 10, (depth - 4) % 6 == 0 and widen_factor >= 1."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6 != 0:
        raise ValueError(
            f"depth must be an integer >= 10 with (depth - 4) % 6 == 0 (e.g. 16, 22, 28, 40), got {depth!r}"
        )
    check_positive_int(widen_factor, "widen_factor")


class PreActBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.shortcut = (
            nn.Conv2d(in_ch, out_ch, 1, stride=stride, padding=0, bias=False)
            if stride != 1 or in_ch != out_ch
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        residual = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = F.relu(self.bn2(out))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        return out + residual


class WideResNet(nn.Module):
    """Normalize -> stem -> 3 groups of pre-activation blocks -> BN-ReLU -> pool -> linear."""

    def __init__(
        self,
        depth: int = 28,
        widen_factor: int = 4,
        *,
        num_classes: int = 10,
        drop_rate: float = 0.0,
        width: float = 1.0,
        in_channels: int = 3,
        mean=None,
        std=None,
    ) -> None:
        super().__init__()
        check_wrn_config(depth, widen_factor)
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        width = check_width(width)
        if not 0.0 <= float(drop_rate) < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
        self.depth, self.widen_factor = depth, widen_factor
        n = (depth - 4) // 6
        widths = [scaled(c, width) for c in (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)]
        self.normalize = Normalize(mean, std, channels=in_channels)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        groups = []
        channels = widths[0]
        for out_ch, stride in zip(widths[1:], (1, 2, 2)):
            blocks = []
            for i in range(n):
                blocks.append(PreActBlock(channels, out_ch, stride if i == 0 else 1, drop_rate))
                channels = out_ch
            groups.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        x = self.conv1(x)
        x = self.block3(self.block2(self.block1(x)))
        x = F.relu(self.bn(x))
        return self.fc(self.flatten(self.pool(x)))


def wide_resnet(
    depth: int,
    widen_factor: int,
    num_classes: int,
    *,
    width: float = 1.0,
    in_channels: int = 3,
    mean=None,
    std=None,
    drop_rate: float = 0.0,
) -> WideResNet:
    return WideResNet(depth, widen_factor, num_classes=num_classes, drop_rate=drop_rate,
                      width=width, in_channels=in_channels, mean=mean, std=std)
