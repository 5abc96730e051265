"""Tests for agent_lab.models: shapes, parameter counts, width scaling,
normalisation, validation and initialisation."""

from __future__ import annotations

import functools
import math
import re

import pytest
import torch
from torch import nn

from agent_lab.models import (
    MODEL_NAMES,
    ModelTooLargeError,
    Normalize,
    build_model,
    check_model_fits,
    count_parameters,
    estimate_parameters,
    is_valid_model_name,
    scaled,
)
from agent_lab.models import memory

CIFAR_NAMES = tuple(n for n in MODEL_NAMES if n != "imagenet-resnet50")
IMAGENET_INPUT = 64  # small stand-in for 224x224 to keep the tests fast
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@functools.lru_cache(maxsize=None)
def cached_model(name: str, num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """Model shared by read-only tests (never train or modify it)."""
    torch.manual_seed(0)
    return build_model(name, num_classes, width=width).eval()


def input_for(name: str, batch: int = 2, channels: int = 3) -> torch.Tensor:
    size = IMAGENET_INPUT if name == "imagenet-resnet50" else 32
    return torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(1))


# --------------------------------------------------------------------------- hand-derived counts

def conv(c_in: int, c_out: int, k: int, bias: bool = False) -> int:
    """Parameters of a k x k convolution."""
    return c_in * c_out * k * k + (c_out if bias else 0)


def bn(c: int) -> int:
    """Batch norm: one weight and one bias per channel."""
    return 2 * c


def fc(f_in: int, f_out: int) -> int:
    """Linear layer with bias."""
    return f_in * f_out + f_out


def vgg16_bsr_params(num_classes: int) -> int:
    # 13 bias-free 3x3 convs, each followed by BN; pools after convs 2, 4, 7, 10,
    # so a 32x32 input leaves a 512 x 2 x 2 map (32 -> 16 -> 8 -> 4 -> 2).
    convs = [(3, 64), (64, 64),
             (64, 128), (128, 128),
             (128, 256), (256, 256), (256, 256),
             (256, 512), (512, 512), (512, 512),
             (512, 512), (512, 512), (512, 512)]
    features = sum(conv(i, o, 3) + bn(o) for i, o in convs)
    classifier = fc(512 * 2 * 2, 256) + fc(256, 256) + fc(256, num_classes)
    return features + classifier


def vgg_c_params(num_classes: int) -> int:
    # 13 convs with bias, each followed by BN; the last conv of groups 3-5 is 1x1.
    # Every conv pads by 1, five pools: 32 -16- 8 -(1x1: 10)- 5 -(7)- 3 -(5)- 2,
    # so the flattened features are 512 x 2 x 2 = 2048.
    convs = [(3, 64, 3), (64, 64, 3),
             (64, 128, 3), (128, 128, 3),
             (128, 256, 3), (256, 256, 3), (256, 256, 1),
             (256, 512, 3), (512, 512, 3), (512, 512, 1),
             (512, 512, 3), (512, 512, 3), (512, 512, 1)]
    features = sum(conv(i, o, k, bias=True) + bn(o) for i, o, k in convs)
    # Linear-ReLU-BatchNorm1d twice, then the output layer.
    classifier = fc(2048, 512) + bn(512) + fc(512, 512) + bn(512) + fc(512, num_classes)
    return features + classifier


def wrn_params(depth: int, k: int, num_classes: int) -> int:
    n = (depth - 4) // 6  # blocks per group
    widths = [16, 16 * k, 32 * k, 64 * k]
    total = conv(3, widths[0], 3)  # stem
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        # first block of a group changes the width: BN(c_in), conv c_in->c_out,
        # BN(c_out), conv c_out->c_out, and a 1x1 shortcut conv c_in->c_out
        total += bn(c_in) + conv(c_in, c_out, 3) + bn(c_out) + conv(c_out, c_out, 3) + conv(c_in, c_out, 1)
        # remaining n - 1 blocks: two BNs and two 3x3 convs at width c_out
        total += (n - 1) * (2 * bn(c_out) + 2 * conv(c_out, c_out, 3))
    total += bn(widths[-1]) + fc(widths[-1], num_classes)  # final BN + classifier
    return total


def test_hand_counts_spelled_out():
    # A few terms written out in full, as a check on the helpers above.
    assert conv(512, 512, 3) == 2_359_296
    assert conv(512, 512, 1, bias=True) == 262_144 + 512
    assert fc(2048, 256) == 524_288 + 256
    # WRN-28-4 stem + first block of group 1: 432 + (32 + 9216 + 128 + 36864 + 1024)
    assert conv(3, 16, 3) + bn(16) + conv(16, 64, 3) + bn(64) + conv(64, 64, 3) + conv(16, 64, 1) == 47_696
    # The WRN formula reproduces the published WRN-28-10 count.
    assert wrn_params(28, 10, 10) == 36_479_194


# --------------------------------------------------------------------------- parameter counts

@pytest.mark.parametrize(
    "name,num_classes,expected",
    [
        ("resnet18", 10, 11_173_962),
        ("resnet34", 10, 21_282_122),
        ("resnet50", 10, 23_520_842),
        ("wrn-28-10", 10, 36_479_194),
        ("imagenet-resnet50", 1000, 25_557_032),
        ("vgg16", 10, vgg16_bsr_params(10)),
        ("vgg16", 100, vgg16_bsr_params(100)),
        ("vgg-c", 10, vgg_c_params(10)),
        ("wrn-28-4", 10, wrn_params(28, 4, 10)),
        ("wrn-28-4", 100, wrn_params(28, 4, 100)),
    ],
)
def test_parameter_count_width1(name, num_classes, expected):
    assert count_parameters(cached_model(name, num_classes)) == expected


def test_imagenet_resnet50_matches_torchvision():
    from torchvision.models import resnet50

    ours = cached_model("imagenet-resnet50", 1000)
    reference = resnet50(weights=None)
    assert [(k, v.shape) for k, v in ours.net.state_dict().items()] == [
        (k, v.shape) for k, v in reference.state_dict().items()
    ]


def test_count_parameters_trainable_only():
    model = build_model("resnet18", 10, width=0.125)
    total = count_parameters(model)
    model.linear.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == total - model.linear.weight.numel()
    assert count_parameters(model) == total


# --------------------------------------------------------------------------- forward shapes

@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shape_width1(name):
    out = cached_model(name, 10)(input_for(name))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODEL_NAMES + ("wrn-16-2",))
def test_forward_shape_width_quarter_train_mode(name):
    torch.manual_seed(0)
    model = build_model(name, 7, width=0.25).train()
    out = model(input_for(name))
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", ["vgg16", "vgg-c", "resnet18", "wrn-28-4", "imagenet-resnet50"])
def test_single_channel_input(name):
    model = build_model(name, 10, width=0.125, in_channels=1, mean=(0.5,), std=(0.25,)).eval()
    assert model(input_for(name, channels=1)).shape == (2, 10)


def test_imagenet_resnet50_full_resolution_shape():
    model = build_model("imagenet-resnet50", 1000, width=0.125).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 224, 224)).shape == (1, 1000)


# --------------------------------------------------------------------------- width scaling

@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("width", [0.25, 0.5])
def test_width_scales_parameters_quadratically(name, width):
    full = count_parameters(cached_model(name, 10))
    small = count_parameters(cached_model(name, 10, width))
    assert 0.85 < (small / full) / width**2 < 1.2


def test_width_scales_hidden_sizes_only():
    model = cached_model("vgg16", 10, 0.25)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert convs[0].in_channels == 3 and convs[0].out_channels == 16
    assert convs[-1].out_channels == 128
    assert [(m.in_features, m.out_features) for m in linears] == [(128 * 2 * 2, 64), (64, 64), (64, 10)]

    wrn = cached_model("wrn-28-4", 10, 0.25)
    assert wrn.conv1.out_channels == 4 and wrn.fc.in_features == 64 and wrn.fc.out_features == 10

    resnet = cached_model("imagenet-resnet50", 10, 0.25)
    assert resnet.net.conv1.in_channels == 3 and resnet.net.conv1.out_channels == 16
    assert resnet.net.fc.in_features == 512 and resnet.net.fc.out_features == 10


def test_scaled_helper():
    assert scaled(64, 1.0) == 64
    assert scaled(64, 0.25) == 16
    assert scaled(64, 0.3) == 19  # round(19.2)
    assert scaled(16, 0.01) == 1  # never below one channel
    assert scaled(10, 0.125) == 1  # round(1.25)
    with pytest.raises(ValueError, match="width"):
        scaled(64, 0)


# --------------------------------------------------------------------------- normalisation

def test_normalize_is_exact():
    x = torch.rand(4, 3, 8, 8)
    norm = Normalize(CIFAR10_MEAN, CIFAR10_STD)
    expected = (x - torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    assert torch.equal(norm(x), expected)


def test_normalize_identity_when_none():
    x = torch.rand(2, 3, 4, 4)
    norm = Normalize()
    assert not norm.enabled
    assert norm(x) is x
    assert list(norm.buffers()) == []


def test_normalize_buffers_move_with_to_and_stay_out_of_state_dict():
    norm = Normalize(CIFAR10_MEAN, CIFAR10_STD).to(torch.float64)
    assert norm.mean.dtype == torch.float64 and norm.std.dtype == torch.float64
    assert {name for name, _ in norm.named_buffers()} == {"mean", "std"}
    assert norm.state_dict() == {}


def test_normalize_rejects_bad_statistics():
    with pytest.raises(ValueError, match="mean and std"):
        Normalize(mean=CIFAR10_MEAN)
    with pytest.raises(ValueError, match="std"):
        Normalize(CIFAR10_MEAN, (0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="in_channels"):
        Normalize((0.5, 0.5), (0.2, 0.2), channels=3)
    with pytest.raises(ValueError, match="mean"):
        build_model("resnet18", 10, mean=(0.5, 0.5), std=(0.2, 0.2))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_first_module_is_normalize(name):
    model = cached_model(name, 10, 0.25)
    first = next(iter(model.children()))
    assert isinstance(first, Normalize) and not first.enabled


def test_model_normalises_inside():
    torch.manual_seed(0)
    normed = build_model("resnet18", 10, width=0.125, mean=CIFAR10_MEAN, std=CIFAR10_STD).eval()
    raw = build_model("resnet18", 10, width=0.125).eval()
    # Statistics are not part of the state, so checkpoints move freely between the two.
    raw.load_state_dict(normed.state_dict())
    assert torch.equal(normed.normalize.mean.flatten(), torch.tensor(CIFAR10_MEAN))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(normed(x), raw(normed.normalize(x)))
        assert not torch.allclose(normed(x), raw(x))


def test_model_to_double_moves_statistics():
    model = build_model("wrn-16-2", 10, width=0.25, mean=CIFAR10_MEAN, std=CIFAR10_STD).to(torch.float64)
    assert model(torch.rand(2, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64


# --------------------------------------------------------------------------- names and validation

def test_model_names():
    assert MODEL_NAMES == ("vgg16", "vgg-c", "resnet18", "resnet34", "resnet50", "wrn-28-4", "imagenet-resnet50")


@pytest.mark.parametrize("name", MODEL_NAMES + ("wrn-28-10", "wrn-16-2", "wrn-40-4", "wrn-10-1", "wrn-22-8"))
def test_valid_names(name):
    assert is_valid_model_name(name)


@pytest.mark.parametrize(
    "name", ["vgg19", "VGG16", "resnet101", "wrn-27-4", "wrn-28-0", "wrn-4-1", "wrn-28", "wrn-28-4 ", "", None, 16]
)
def test_invalid_names(name):
    assert not is_valid_model_name(name)


@pytest.mark.parametrize("name", ["vgg19", "wrn-27-4", "", None])
def test_unknown_name_raises_with_choices(name):
    with pytest.raises(ValueError) as info:
        build_model(name, 10)
    message = str(info.value)
    assert "name" in message
    for valid in MODEL_NAMES:
        assert valid in message
    assert "wrn-<depth>-<k>" in message


@pytest.mark.parametrize("width", [0, -0.5, math.nan, math.inf, "1", None, True])
def test_bad_width_raises(width):
    with pytest.raises(ValueError, match=r"width must be a finite number > 0"):
        build_model("resnet18", 10, width=width)


@pytest.mark.parametrize("field,kwargs", [("num_classes", {"num_classes": 0}), ("in_channels", {"in_channels": 0})])
def test_bad_sizes_raise(field, kwargs):
    args = {"num_classes": 10, **kwargs}
    num_classes = args.pop("num_classes")
    with pytest.raises(ValueError, match=field):
        build_model("vgg16", num_classes, **args)


# --------------------------------------------------------------------------- layer types and init

EXPECTED_LAYERS = {
    # name: (Conv2d count, Linear count)
    "vgg16": (13, 3),
    "vgg-c": (13, 3),
    "resnet18": (1 + 2 * 8 + 3, 1),  # stem + 8 basic blocks + 3 projection shortcuts
    "resnet34": (1 + 2 * 16 + 3, 1),
    "resnet50": (1 + 3 * 16 + 4, 1),  # stem + 16 bottlenecks + 4 projection shortcuts
    "wrn-28-4": (1 + 2 * 12 + 3, 1),  # stem + 12 blocks + 3 shortcut convs
    "imagenet-resnet50": (1 + 3 * 16 + 4, 1),
}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_maskable_layers_found_by_isinstance(name):
    model = cached_model(name, 10, 0.25)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert (len(convs), len(linears)) == EXPECTED_LAYERS[name]
    assert all(type(m) is nn.Conv2d for m in convs) and all(type(m) is nn.Linear for m in linears)
    # Every parameter lives in a Conv2d, a Linear or a batch norm.
    owners = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)
    owned = {id(p) for m in model.modules() if isinstance(m, owners) for p in m.parameters(recurse=False)}
    assert owned == {id(p) for p in model.parameters()}


def test_vgg_bias_choices():
    bsr = cached_model("vgg16", 10, 0.25)
    assert all(m.bias is None for m in bsr.modules() if isinstance(m, nn.Conv2d))
    assert not any(isinstance(m, nn.BatchNorm1d) for m in bsr.modules())
    vggc = cached_model("vgg-c", 10, 0.25)
    convs = [m for m in vggc.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.bias is not None for m in convs)
    assert [i for i, m in enumerate(convs) if m.kernel_size == (1, 1)] == [6, 9, 12]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in vggc.modules()) == 2


@pytest.mark.parametrize("name", CIFAR_NAMES)
def test_initialisation(name):
    model = cached_model(name, 10)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            assert torch.all(m.bias == 0)
    # Kaiming normal, fan_out, ReLU gain on the largest conv: std = sqrt(2 / (out * k * k)).
    big = max((m for m in model.modules() if isinstance(m, nn.Conv2d)), key=lambda m: m.weight.numel())
    fan_out = big.out_channels * big.kernel_size[0] * big.kernel_size[1]
    assert big.weight.std().item() == pytest.approx(math.sqrt(2.0 / fan_out), rel=0.05)
    assert abs(big.weight.mean().item()) < 0.1 * math.sqrt(2.0 / fan_out)


@pytest.mark.parametrize("width", [1.0, 0.25])
def test_imagenet_resnet50_initialisation(width):
    # torchvision's own scheme, kept for rebuilt (width-scaled) layers as well.
    net = cached_model("imagenet-resnet50", 10, width).net
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    big = max((m for m in net.modules() if isinstance(m, nn.Conv2d)), key=lambda m: m.weight.numel())
    fan_out = big.out_channels * big.kernel_size[0] * big.kernel_size[1]
    assert big.weight.std().item() == pytest.approx(math.sqrt(2.0 / fan_out), rel=0.05)


# --------------------------------------------------------------------------- memory check

def suggested_width(message: str) -> float:
    match = re.search(r"choose a width up to ~(\S+)$", message)
    assert match, message
    return float(match.group(1))


@pytest.mark.parametrize("name", ["vgg16", "resnet18", "wrn-28-4"])
@pytest.mark.parametrize("width", [0.125, 0.5, 1.0])
def test_parameter_estimate_matches_the_built_model(name, width):
    true = count_parameters(cached_model(name, 10, width))
    assert abs(estimate_parameters(name, 10, width) - true) <= 0.01 * true


@pytest.mark.parametrize("name", ["vgg16", "resnet18", "wrn-28-4"])
@pytest.mark.parametrize("width", [memory.EXACT_UP_TO * 1.5, 37.3])
def test_extrapolated_estimate_matches_a_meta_device_build(name, width):
    with torch.device("meta"):
        true = count_parameters(build_model(name, 10, width=width))
    assert abs(estimate_parameters(name, 10, width) - true) <= 0.01 * true


def test_width_too_large_for_memory_names_the_field_and_a_width_that_fits():
    if memory.device_memory("cpu") is None:
        pytest.skip("this platform does not report its physical memory")
    with pytest.raises(ModelTooLargeError) as caught:
        check_model_fits("vgg16", 10, 1e9)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError) and "\n" not in message
    assert message.startswith("RunConfig.width: 1e+09 gives a vgg16 with ~")
    assert "GiB for weights, gradients and optimizer state" in message and "GiB of memory (cpu)" in message
    check_model_fits("vgg16", 10, suggested_width(message))


@pytest.mark.parametrize("name", ["vgg16", "resnet18", "wrn-28-4", "imagenet-resnet50"])
def test_suggested_width_fits_and_little_more_does_not(name, monkeypatch):
    monkeypatch.setattr(memory, "device_memory", lambda device: (8 * 2**30, "cuda:0"))
    with pytest.raises(ModelTooLargeError, match=r"this machine has 8 GiB of memory \(cuda:0\)") as caught:
        check_model_fits(name, 10, 100.0, device="cuda:0")
    largest = suggested_width(str(caught.value))
    assert check_model_fits(name, 10, largest, device="cuda:0") * 4 * 4 <= 8 * 2**30
    with pytest.raises(ModelTooLargeError):
        check_model_fits(name, 10, largest * 1.1, device="cuda:0")


@pytest.mark.parametrize("width", [1.0, 0.125])
def test_normal_widths_fit(width):
    assert check_model_fits("vgg16", 10, width) == count_parameters(cached_model("vgg16", 10, width))


def test_unknown_memory_skips_the_check(monkeypatch):
    def no_sysconf(name):
        raise ValueError(f"unrecognized configuration name {name}")

    monkeypatch.setattr(memory.os, "sysconf", no_sysconf)
    assert check_model_fits("vgg16", 10, 1e9) > 1e24
    assert check_model_fits("vgg16", 10, 1e9, device="meta") > 1e24


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_width_too_large_for_the_gpu_names_it():
    with pytest.raises(ModelTooLargeError, match=r"GiB of memory \(cuda:0\); choose a width up to ~"):
        check_model_fits("vgg16", 10, 1e9, device="cuda")
