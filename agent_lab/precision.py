"""How a run's arithmetic runs: precision, memory format and compilation (``RunConfig`` fields
``precision``, ``channels_last``, ``compile``).

* ``precision``: ``fp32`` (the default, as before: float32 parameters and arithmetic; on NVIDIA GPUs
  matmuls and convolutions may use TF32 as the ``tf32`` field allows, default on), ``tf32`` (the same
  with TF32 required on; a config with ``tf32=False`` is refused) and ``bf16`` (the training passes
  run under ``torch.autocast`` with bfloat16, on CUDA and on CPU). Parameters, gradients, optimizer
  state, AGENT's g̃ and snapshot stay float32; ``cross_entropy`` and the other losses run in float32
  under autocast; ĉ*'s regression is float64 as always. Evaluations (clean and robust) and the
  diagnostics run in float32 whatever the training precision, so reported numbers are measured in
  full precision.
* ``channels_last``: the model's 4-D weights, and the training inputs, in channels-last memory
  format (faster convolutions on GPUs with tensor cores and with oneDNN on many CPUs).
* ``compile``: ``torch.compile`` of the model in place (``nn.Module.compile``: parameter names and
  checkpoints unchanged). AGENT's snapshot θ̃ (``isolation.copy_without_grads``) gets a compiled
  forward of its own, once: the snapshot is refreshed by in-place copies afterwards, so it never
  recompiles.
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch
from torch import nn

__all__ = ["PRECISIONS", "training_autocast", "set_backend_precision", "prepare_model",
           "to_memory_format"]

PRECISIONS = ("fp32", "tf32", "bf16")


def training_autocast(precision: str, device: torch.device) -> ContextManager:
    """The context the training passes of a run at ``precision`` run in (autocast for bf16)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_backend_precision(precision: str, tf32: bool, device: torch.device) -> None:
    """Set the process-wide TF32 flags a run at ``precision`` asks for (CUDA only; no effect on CPU)."""
    if device.type != "cuda":
        return
    allow = tf32 or precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    torch.backends.cudnn.benchmark = True


def prepare_model(model: nn.Module, *, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """Convert ``model`` in place to channels-last and/or compile it; returns it."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        model.compile()
    return model


def to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``x`` in channels-last format when asked and 4-D, else ``x`` itself."""
    if channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
