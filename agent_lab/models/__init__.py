"""Network architectures used in the experiments.

Every model takes images with values in [0, 1] and standardises them itself
through its first module, a :class:`Normalize` (the identity when ``mean`` and
``std`` are ``None``).  Prunable layers are plain ``nn.Conv2d`` and
``nn.Linear`` modules.

``width`` multiplies every hidden channel count and hidden fully connected
width (never the input channels or the number of classes); ``width=1`` gives
the reference architecture.
"""
from .common import Normalize, init_weights, scaled
from .imagenet import ImageNetResNet
from .memory import ModelTooLargeError, check_model_fits, estimate_parameters
from .registry import MODEL_NAMES, build_model, count_parameters, is_valid_model_name, parse_wrn_name
from .resnet import CifarResNet
from .vgg import VGG
from .wrn import WideResNet

__all__ = [
    "MODEL_NAMES",
    "build_model",
    "is_valid_model_name",
    "parse_wrn_name",
    "count_parameters",
    "check_model_fits",
    "estimate_parameters",
    "ModelTooLargeError",
    "Normalize",
    "scaled",
    "init_weights",
    "VGG",
    "CifarResNet",
    "WideResNet",
    "ImageNetResNet",
]
