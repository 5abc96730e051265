"""paired_gradients: one vmapped call gives the same losses, gradients and buffers as two autograd passes."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from agent_lab.models import build_model
from agent_lab.optim.fused import paired_gradients


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 10))


MODELS = {
    "resnet18": lambda: build_model("resnet18", 10, width=0.125),
    "vgg16": lambda: build_model("vgg16", 10, width=0.125),
    "mlp": _mlp,
}
SIZE = {"resnet18": 32, "vgg16": 32, "mlp": 8}
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _setup(name: str, dtype: torch.dtype, train: bool):
    torch.manual_seed(0)
    model = MODELS[name]().to(dtype)
    model.train(train)
    with torch.no_grad():  # non-trivial running statistics, so eval mode depends on them
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for m in other.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.add_(0.1)
                m.running_var.mul_(1.3)
                m.num_batches_tracked.fill_(7)
    x = torch.rand(8, 3, SIZE[name], SIZE[name], dtype=dtype)
    y = torch.randint(0, 10, (8,))
    return model, other, x, y


def _sequential(model: nn.Module, x, y):
    ref = copy.deepcopy(model)
    loss = F.cross_entropy(ref(x), y)
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in ref.named_parameters()}, ref


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    # tolerance relative to the gradient's scale (absolute below scale 1)
    return float((a - b).abs().max()) <= tol * max(1.0, float(b.abs().max()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", list(MODELS))
def test_paired_equals_two_sequential_passes(name, train, dtype):
    model, other, x, y = _setup(name, dtype, train)
    other_params = {n: p.detach().clone() for n, p in other.named_parameters()}
    other_buffers = {n: b.detach().clone() for n, b in other.named_buffers()}
    other_buffers_before = {n: b.clone() for n, b in other_buffers.items()}

    loss_ref, grads_ref, ref_model = _sequential(model, x, y)
    _, grads_other_ref, _ = _sequential(other, x, y)

    loss, grads_live, grads_other = paired_gradients(model, other_params, other_buffers, x, y)
    tol = TOL[dtype]
    assert abs(float(loss) - float(loss_ref)) <= tol * max(1.0, abs(float(loss_ref)))
    assert set(grads_live) == set(grads_ref) == set(grads_other)
    for n in grads_ref:
        assert _close(grads_live[n], grads_ref[n], tol), n
        assert _close(grads_other[n], grads_other_ref[n], tol), n
    # the live model's buffers end as one ordinary forward leaves them; other_buffers are untouched
    for (n, b), b_ref in zip(model.named_buffers(), ref_model.buffers()):
        if b.is_floating_point():
            assert _close(b, b_ref, tol), n
        else:
            assert torch.equal(b, b_ref), n
    for n, b in other_buffers.items():
        assert torch.equal(b, other_buffers_before[n]), n
    assert all(p.grad is None for p in model.parameters())
    assert model.training == train


def test_live_buffers_can_be_left_alone():
    model, other, x, y = _setup("resnet18", torch.float32, True)
    before = {n: b.clone() for n, b in model.named_buffers()}
    paired_gradients(model, dict(other.named_parameters()), dict(other.named_buffers()), x, y,
                     update_live_buffers=False)
    for n, b in model.named_buffers():
        assert torch.equal(b, before[n]), n


def test_missing_buffers_default_to_live_and_missing_params_raise():
    model, other, x, y = _setup("mlp", torch.float64, True)
    model.register_buffer("constant", torch.zeros(3))  # absent from other_buffers: the live one is used
    other_params = {n: p.detach().clone() for n, p in other.named_parameters()}
    _, _, grads_other = paired_gradients(model, other_params, {}, x, y)
    _, grads_ref, _ = _sequential(other, x, y)
    for n in grads_ref:
        assert _close(grads_other[n], grads_ref[n], 1e-10)
    other_params.pop("1.weight")
    with pytest.raises(KeyError, match="1.weight"):
        paired_gradients(model, other_params, {}, x, y)
