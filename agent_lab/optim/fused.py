"""Gradients at two parameter sets on the same batch in one batched call.

Variance-reduction methods (AGENT's snapshot gradient, SVRG, MVR/STORM) need the gradient of the same
mini-batch loss at the live parameters θ and at a second point θ' (a snapshot, the previous iterate).
Done naively that is two forward/backward passes, each a chain of small kernels. Here both passes run
as one: the two parameter sets are stacked along a new leading dimension and
``torch.func.vmap(torch.func.grad_and_value(loss))`` maps over it, so every layer runs once on a batch
twice as wide (a convolution with stacked weights becomes one grouped convolution).

BatchNorm. Each copy runs in the live model's mode with its own buffers: the live copy with the live
model's buffers, the other copy with ``other_buffers``. In train mode BatchNorm normalises with the
statistics of the batch (the same inputs for both copies, but different activations), and it updates
its running statistics in place. Under ``vmap`` that in-place update works as long as the running
statistics are *batched* tensors, so both buffer sets are stacked (as fresh copies) too; no
``replace_all_batch_norm_modules_`` is needed in this torch version (that function would instead stop
BatchNorm from tracking running statistics at all). After the call, slice 0 of the stacked buffers
holds exactly what a normal forward of the live model would have left in its buffers (running mean,
unbiased running variance, ``num_batches_tracked``); it is copied back into the live model when
``update_live_buffers`` is true (the default), so a training step that uses this function in place of
``loss.backward()`` leaves the model as an ordinary step would. Slice 1 (the other copy's updated
statistics) is discarded: ``other_buffers`` are never modified.

Randomness (dropout) is shared by the two copies by default (``randomness="same"``): both gradients see
the same dropout mask, as the "same batch" of a variance-reduced estimate wants.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils._pytree import tree_map

__all__ = ["paired_gradients", "paired_gradients_of"]


def paired_gradients(model: nn.Module, other_params: Mapping[str, torch.Tensor],
                     other_buffers: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                     loss_fn_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
                     *, update_live_buffers: bool = True, randomness: str = "same",
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Loss and gradients at the live parameters and at ``other_params``, same batch, one batched call.

    ``model`` is called as ``loss_fn_logits(model(x), y)`` at its own parameters and buffers and at
    ``other_params``/``other_buffers`` (keys as in ``named_parameters``/``named_buffers``; a buffer
    missing from ``other_buffers``, e.g. a non-persistent normalisation constant, is taken from the
    live model). Gradients are taken with respect to every parameter with ``requires_grad``; every
    trainable parameter must appear in ``other_params`` (frozen ones default to the live values).

    Returns ``(loss_live, grads_live, grads_other)``: the detached mean loss at the live parameters and
    two ``{name: gradient}`` dicts, the same as two sequential autograd passes would give. The live
    model's ``.grad`` fields are not touched; its BatchNorm running statistics are updated as one
    ordinary forward would update them if ``update_live_buffers`` (see the module docstring);
    ``other_buffers`` are never modified. ``randomness`` is ``vmap``'s: ``"same"`` (default) gives both
    copies the same dropout mask, ``"different"`` independent ones.
    """
    def loss_of(call: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        loss = loss_fn_logits(call(x), y)
        return loss, loss.detach()

    losses, _, grads_live, grads_other = paired_gradients_of(
        model, other_params, other_buffers, loss_of, update_live_buffers=update_live_buffers, randomness=randomness)
    return losses[0], grads_live, grads_other


def paired_gradients_of(model: nn.Module, other_params: Mapping[str, torch.Tensor],
                        other_buffers: Mapping[str, torch.Tensor],
                        loss_of: Callable[[Callable[[torch.Tensor], torch.Tensor]], tuple[torch.Tensor, Any]],
                        *, update_live_buffers: bool = True, randomness: str = "same",
                        ) -> tuple[torch.Tensor, Any, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """:func:`paired_gradients` for any loss: ``loss_of(call)`` returns ``(loss, aux)``, where ``call(x)``
    runs the model (at whichever of the two parameter sets is being mapped) and may be called several
    times (TRADES calls it on the clean and on the adversarial inputs).

    Returns ``(losses, aux_live, grads_live, grads_other)``: the detached losses at the live and the
    other parameters (a tensor of 2), the live copy's ``aux`` (e.g. its logits) and the gradients.
    """
    named_params = dict(model.named_parameters())
    trainable = [n for n, p in named_params.items() if p.requires_grad]
    missing = [n for n in trainable if n not in other_params]
    if missing:
        raise KeyError(f"other_params: missing the trainable parameters {missing}")
    unknown = sorted(set(other_params) - set(named_params))
    if unknown:
        raise KeyError(f"other_params: {unknown} are not parameters of the model")
    named_buffers = dict(model.named_buffers())
    unknown = sorted(set(other_buffers) - set(named_buffers))
    if unknown:
        raise KeyError(f"other_buffers: {unknown} are not buffers of the model")

    def stacked(live: torch.Tensor, other: torch.Tensor | None, what: str, name: str) -> torch.Tensor:
        live = live.detach()
        if other is None:
            other = live
        other = other.detach()
        if other.shape != live.shape:
            raise ValueError(f"{what}[{name!r}]: shape {tuple(other.shape)} differs from the model's "
                             f"{tuple(live.shape)}")
        return torch.stack([live, other.to(device=live.device, dtype=live.dtype)])

    diff = {n: stacked(named_params[n], other_params[n], "other_params", n) for n in trainable}
    fixed = {n: stacked(p, other_params.get(n), "other_params", n)
             for n, p in named_params.items() if not p.requires_grad}
    # torch.stack copies, so the in-place running-stat updates land in these fresh tensors only.
    buffers = {n: stacked(b, other_buffers.get(n), "other_buffers", n) for n, b in named_buffers.items()}

    def loss_at(params: dict[str, torch.Tensor], rest: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        state = {**params, **rest}
        loss, aux = loss_of(lambda inputs: functional_call(model, state, (inputs,)))
        return loss, (loss.detach(), aux)

    grads, (losses, aux) = vmap(grad(loss_at, has_aux=True), in_dims=(0, 0), randomness=randomness)(
        diff, {**fixed, **buffers})

    if update_live_buffers:
        with torch.no_grad():
            for n, b in named_buffers.items():
                b.copy_(buffers[n][0])
    grads_live = {n: g[0] for n, g in grads.items()}
    grads_other = {n: g[1] for n, g in grads.items()}
    aux_live = tree_map(lambda t: t[0] if isinstance(t, torch.Tensor) else t, aux)
    return losses, aux_live, grads_live, grads_other
