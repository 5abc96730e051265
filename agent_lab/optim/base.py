"""Base optimizers: SGD (momentum, Nesterov; coupled or decoupled weight decay) and Adam.

The gradient-correcting optimizers (AGENT family, MVR) and reduce-lr step with SGD.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch



class SGDW(torch.optim.SGD):
    """SGD with decoupled weight decay that follows the learning-rate schedule.

    Before each step every parameter with a gradient is shrunk: ``w <- w * (1 - wd * lr_t / lr_0)``,
    then the plain (momentum) SGD step runs on the gradient alone. This is TensorFlow's ``SGDW``
    with a weight-decay schedule proportional to the lr schedule, the optimizer of BSR-Net and
    A-BSR-Net (Loshchilov & Hutter's decoupled decay).
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=0.0)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = weight_decay
            group["base_lr"] = lr

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 (same contract as torch.optim.SGD.step)
        for group in self.param_groups:
            decay = group["decoupled_weight_decay"] * group["lr"] / group["base_lr"]
            params = [p for p in group["params"] if p.grad is not None]
            if decay and params:
                torch._foreach_mul_(params, 1.0 - decay)
        return super().step(closure)


def build_optimizer(config: Any, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The base optimizer named by ``config.optimizer`` with the config's lr, momentum and decay."""
    params = list(params)
    decoupled = config.weight_decay_mode == "decoupled"
    if config.optimizer != "adam":
        # Every other optimizer steps with SGD: the correcting ones (AGENT family, MVR) rewrite the
        # gradient before the step; reduce-lr runs at a fraction of the lr (paper Table 8).
        lr = config.lr * (config.reduce_lr_factor if config.optimizer == "reduce-lr" else 1.0)
        if decoupled:
            return SGDW(params, lr=lr, momentum=config.momentum, nesterov=config.nesterov,
                        weight_decay=config.weight_decay)
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    betas = (config.momentum, 0.999)
    if decoupled:
        return torch.optim.AdamW(params, lr=config.lr, betas=betas, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, betas=betas, weight_decay=config.weight_decay)
