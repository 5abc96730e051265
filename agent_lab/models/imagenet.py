"""ImageNet ResNet-50: torchvision's ``resnet50`` (random init) behind a ``Normalize``.

At ``width=1`` with three input channels the network is exactly torchvision's
``resnet50(weights=None, num_classes=...)``, including its own initialisation,
and ``model.net`` can load torchvision ResNet-50 state dicts.  For other
widths (or input channel counts) every convolution, batch norm and the final
linear layer are rebuilt with each hidden channel count ``c`` replaced by
``scaled(c, width)``; the forward pass is torchvision's unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import Normalize, check_positive_int, check_width, scaled

__all__ = ["ImageNetResNet", "imagenet_resnet50"]


def _rescale_channels(net: nn.Module, width: float, in_channels: int) -> None:
    """Rebuild ``net``'s Conv2d / BatchNorm2d / Linear layers with scaled channel counts, in place.

    The network's first convolution (named ``conv1`` at the top level) reads
    ``in_channels`` image channels; every other channel count ``c`` becomes
    ``scaled(c, width)``, which keeps connected layers consistent because equal
    original counts map to equal scaled counts.  The final ``fc`` keeps its
    number of outputs.
    """
    replacements: list[tuple[nn.Module, str, nn.Module]] = []
    for parent_name, parent in net.named_modules():
        for child_name, m in parent.named_children():
            full = f"{parent_name}.{child_name}" if parent_name else child_name
            if isinstance(m, nn.Conv2d):
                new_in = in_channels if full == "conv1" else scaled(m.in_channels, width)
                new = nn.Conv2d(
                    new_in, scaled(m.out_channels, width), kernel_size=m.kernel_size, stride=m.stride,
                    padding=m.padding, dilation=m.dilation, groups=m.groups, bias=m.bias is not None,
                )
                nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
                if new.bias is not None:
                    nn.init.zeros_(new.bias)
            elif isinstance(m, nn.BatchNorm2d):
                new = nn.BatchNorm2d(scaled(m.num_features, width), eps=m.eps, momentum=m.momentum)
            elif isinstance(m, nn.Linear) and full == "fc":
                new = nn.Linear(scaled(m.in_features, width), m.out_features, bias=m.bias is not None)
            else:
                continue
            replacements.append((parent, child_name, new))
    for parent, child_name, new in replacements:
        setattr(parent, child_name, new)


class ImageNetResNet(nn.Module):
    """``Normalize`` followed by a torchvision ResNet stored as ``net``."""

    def __init__(self, net: nn.Module, normalize: Normalize) -> None:
        super().__init__()
        self.normalize = normalize
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def imagenet_resnet50(
    num_classes: int, *, width: float = 1.0, in_channels: int = 3, mean=None, std=None
) -> ImageNetResNet:
    check_positive_int(num_classes, "num_classes")
    check_positive_int(in_channels, "in_channels")
    width = check_width(width)
    normalize = Normalize(mean, std, channels=in_channels)
    from torchvision.models import resnet50 as _tv_resnet50  # imported lazily: torchvision is slow to import

    net = _tv_resnet50(weights=None, num_classes=num_classes)
    if width != 1.0 or in_channels != 3:
        _rescale_channels(net, width, in_channels)
    return ImageNetResNet(net, normalize)
