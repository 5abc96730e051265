"""CIFAR ResNets (ResNet-18/34/50) for 32x32 inputs.

Layout: a 3x3 stride-1 stem convolution with 64 channels (no max pooling),
four stages with 64, 128, 256 and 512 base channels (stride 1, 2, 2, 2),
global average pooling and one linear layer.  Blocks are post-activation
(conv-BN-ReLU); a block whose stride or channel count changes projects its
shortcut with a 1x1 convolution + BN.  Bottleneck blocks expand by 4 and
stride on their 3x3 convolution.  All convolutions are bias-free.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .common import Normalize, check_positive_int, check_width, init_weights, scaled

__all__ = ["BasicBlock", "Bottleneck", "CifarResNet", "resnet18", "resnet34", "resnet50"]


def _conv_bn(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
    return conv, nn.BatchNorm2d(out_ch)


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    conv, bn = _conv_bn(in_ch, out_ch, 1, stride)
    return nn.Sequential(conv, bn)


class BasicBlock(nn.Module):
    """Two 3x3 convs; output channels = ``planes``."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(in_ch, planes, 3, stride)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3)
        self.shortcut = _shortcut(in_ch, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand; output channels = 4 * ``planes``."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1, self.bn1 = _conv_bn(in_ch, planes, 1)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3, stride)
        self.conv3, self.bn3 = _conv_bn(planes, out_ch, 1)
        self.shortcut = _shortcut(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Normalize -> 3x3 stem -> 4 stages -> global average pool -> linear."""

    STAGE_CHANNELS = (64, 128, 256, 512)
    STAGE_STRIDES = (1, 2, 2, 2)

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        num_blocks: Sequence[int],
        *,
        num_classes: int = 10,
        width: float = 1.0,
        in_channels: int = 3,
        mean=None,
        std=None,
    ) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        width = check_width(width)
        if len(num_blocks) != len(self.STAGE_CHANNELS):
            raise ValueError(f"num_blocks must have {len(self.STAGE_CHANNELS)} entries, got {list(num_blocks)}")
        self.normalize = Normalize(mean, std, channels=in_channels)
        stem_ch = scaled(64, width)
        self.conv1, self.bn1 = _conv_bn(in_channels, stem_ch, 3)
        channels = stem_ch
        stages = []
        for base, stride, count in zip(self.STAGE_CHANNELS, self.STAGE_STRIDES, num_blocks):
            planes = scaled(base, width)
            blocks = []
            for i in range(count):
                blocks.append(block(channels, planes, stride if i == 0 else 1))
                channels = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.linear = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return self.linear(self.flatten(self.pool(x)))


def resnet18(num_classes: int, *, width: float = 1.0, in_channels: int = 3, mean=None, std=None) -> CifarResNet:
    return CifarResNet(BasicBlock, (2, 2, 2, 2), num_classes=num_classes, width=width,
                       in_channels=in_channels, mean=mean, std=std)


def resnet34(num_classes: int, *, width: float = 1.0, in_channels: int = 3, mean=None, std=None) -> CifarResNet:
    return CifarResNet(BasicBlock, (3, 4, 6, 3), num_classes=num_classes, width=width,
                       in_channels=in_channels, mean=mean, std=std)


def resnet50(num_classes: int, *, width: float = 1.0, in_channels: int = 3, mean=None, std=None) -> CifarResNet:
    return CifarResNet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes, width=width,
                       in_channels=in_channels, mean=mean, std=std)
