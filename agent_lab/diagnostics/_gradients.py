"""Shared plumbing: the default loss, which coordinates count ("active"), batches, flat gradients.

Gradient vector: the gradients of every trainable parameter (``requires_grad``), flattened and
concatenated in ``model.named_parameters()`` order, in float64. With ``masks`` (``{name: bool
tensor}``, a :class:`~agent_lab.sparse.masks.MaskState`, or anything with a ``.masks`` attribute
holding one, e.g. a ``Sparsifier``) only the active coordinates are kept: the True entries of
a masked parameter and every entry of a parameter without a mask.

In a run split over several ranks (``torchrun``) every rank holds its slice of each batch: the loss
and gradient of a batch are then the global batch's, each rank's mean weighted by its examples, so
that every rank computes the same statistics as one process on the whole batch.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.full_pass import ClassMixing, warn_if_class_sorted
from ..distributed import all_reduce_mean_, is_distributed
from ..optim.agent import _batch_size, _scalar_loss

LossFn = Callable[[nn.Module, Any, Any], torch.Tensor]
Batches = Iterable[tuple[Any, Any]] | Callable[[], Iterable[tuple[Any, Any]]]


def cross_entropy_loss(model: nn.Module, x: Any, y: Any) -> torch.Tensor:
    """The default ``loss_fn``: mean cross-entropy of ``model(x)`` against labels ``y``."""
    return F.cross_entropy(model(x), y)


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError(f"model: {type(model).__name__} has no parameter that requires a gradient")
    return named


def resolve_masks(masks: Any) -> dict[str, torch.Tensor] | None:
    """``None``, a mapping, a ``MaskState`` or an object with ``.masks`` -> ``{name: tensor}``."""
    seen = 0
    while masks is not None and not isinstance(masks, Mapping) and hasattr(masks, "masks") and seen < 3:
        masks, seen = masks.masks, seen + 1
    if masks is None:
        return None
    if not isinstance(masks, Mapping):
        raise ValueError(f"masks: expected a dict {{parameter name: bool tensor}}, a MaskState or None, "
                         f"got {type(masks).__name__}")
    return dict(masks)


class ActiveSet:
    """The trainable parameters of a model and, per parameter, which entries count."""

    def __init__(self, model: nn.Module, masks: Any = None) -> None:
        named = trainable(model)
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.device = named[0][1].device
        given = resolve_masks(masks) or {}
        unknown = sorted(set(given) - set(self.names))
        if unknown:
            raise ValueError(f"masks: {unknown} are not trainable parameters of {type(model).__name__}")
        self.masks: list[torch.Tensor | None] = []
        for name, p in named:
            m = given.get(name)
            if m is None:
                self.masks.append(None)
                continue
            if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or tuple(m.shape) != tuple(p.shape):
                what = (f"{m.dtype} tensor of shape {tuple(m.shape)}" if isinstance(m, torch.Tensor)
                        else type(m).__name__)
                raise ValueError(f"masks: the mask of {name!r} must be a bool tensor of shape "
                                 f"{tuple(p.shape)}, got {what}")
            self.masks.append(m.detach().to(p.device).reshape(-1))
        self.n_total = sum(p.numel() for _, p in named)
        self.n_active = sum(p.numel() if m is None else int(m.sum()) for (_, p), m in zip(named, self.masks))
        if self.n_active == 0:
            raise ValueError("masks: no active coordinate is left (every entry of every parameter is masked)")

    @property
    def masked(self) -> bool:
        return any(m is not None for m in self.masks)

    def mask_of(self, name: str) -> torch.Tensor | None:
        m = self.masks[self.names.index(name)]
        return None if m is None else m.reshape(self.shapes[self.names.index(name)])

    def params_of(self, model: nn.Module, what: str = "model") -> list[nn.Parameter]:
        """``model``'s parameters named like ours (a copy or a snapshot of the same architecture)."""
        by_name = dict(model.named_parameters())
        params = []
        for name, shape in zip(self.names, self.shapes):
            p = by_name.get(name)
            if p is None or tuple(p.shape) != shape:
                raise ValueError(f"{what}: its parameters do not match the model's ({name!r} of shape "
                                 f"{shape} is {'missing' if p is None else f'of shape {tuple(p.shape)}'})")
            params.append(p)
        return params

    def flatten(self, tensors: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """Float64 flat vector of the active entries of per-parameter ``tensors`` (None -> zeros)."""
        parts = []
        for t, m, shape in zip(tensors, self.masks, self.shapes):
            if t is None:
                n = int(torch.Size(shape).numel()) if m is None else int(m.sum())
                parts.append(torch.zeros(n, dtype=torch.float64, device=self.device))
                continue
            flat = t.detach().reshape(-1).to(device=self.device, dtype=torch.float64)
            parts.append(flat if m is None else flat[m.to(flat.device)])
        return torch.cat(parts)

    def select(self, vector: torch.Tensor, what: str) -> torch.Tensor:
        """A flat vector over all trainable coordinates, or over the active ones -> active ones."""
        v = torch.as_tensor(vector).detach().reshape(-1).to(device=self.device, dtype=torch.float64)
        if v.numel() == self.n_active:
            return v
        if v.numel() == self.n_total:
            parts, start = [], 0
            for m, shape in zip(self.masks, self.shapes):
                n = int(torch.Size(shape).numel())
                piece = v[start:start + n]
                parts.append(piece if m is None else piece[m])
                start += n
            return torch.cat(parts)
        raise ValueError(f"{what}: expected {self.n_active} (active) or {self.n_total} (all) entries, "
                         f"got {v.numel()}")


def iterate_batches(batches: Batches, where: str = "diagnostics") -> Iterator[tuple[Any, Any, int]]:
    """Yield ``(x, y, batch size)`` from an iterable of pairs or a callable returning one.

    After the last batch, a :class:`~agent_lab.data.ClassSortedBatchesWarning` names ``where`` if
    the batches looked sorted by class (see :mod:`agent_lab.data.full_pass`).
    """
    if batches is None:
        raise ValueError("batches: expected an iterable of (x, y) pairs or a callable returning one, got None")
    if not hasattr(batches, "__iter__"):
        if not callable(batches):
            raise ValueError(f"batches: expected an iterable of (x, y) pairs or a callable returning one, "
                             f"got {type(batches).__name__}")
        batches = batches()
    mixing = ClassMixing()
    for item in batches:
        try:
            x, y = item
        except (TypeError, ValueError):
            raise ValueError("batches: every item must be a pair (x, y)") from None
        mixing.update(y)
        yield x, y, _batch_size(x, y)
    warn_if_class_sorted(mixing, where)


def batch_gradient(model: nn.Module, params: Sequence[torch.Tensor], loss_fn: LossFn, x: Any,
                   y: Any) -> tuple[torch.Tensor, tuple[torch.Tensor | None, ...]]:
    """(detached mean loss, per-parameter gradients) of one batch, without touching ``.grad``."""
    with torch.enable_grad():
        loss = _scalar_loss(loss_fn(model, x, y))
        grads = torch.autograd.grad(loss, list(params), allow_unused=True)
    loss = loss.detach()
    if is_distributed():  # the global batch's mean over the ranks' slices
        all_reduce_mean_([loss, *(g for g in grads if g is not None)], weight=_batch_size(x, y))
    return loss, grads


def batch_loss(model: nn.Module, loss_fn: LossFn, x: Any, y: Any) -> torch.Tensor:
    with torch.no_grad():
        loss = _scalar_loss(loss_fn(model, x, y)).detach()
    if is_distributed():
        all_reduce_mean_([loss], weight=_batch_size(x, y))
    return loss


def empty_batches_error() -> ValueError:
    return ValueError("batches: is empty (no (x, y) pair was yielded)")


def too_few_batches_error(k: int) -> ValueError:
    return ValueError(f"batches: a sample variance over batches needs at least 2 batches, got {k}")
