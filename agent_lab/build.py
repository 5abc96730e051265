"""From a config to the parts of a run, and back from a checkpoint to its model.

``RunConfig`` says what a run is; this module builds it: the device, the data set (with its
subsets), the model, and the callbacks (sparsifier, gradient corrector, diagnostics) attached to a
training loop. It also rebuilds a stored run's model and masks from its checkpoint. The training
loop (``agent_lab.train``) and every driver build through these functions.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from .config import RunConfig
from .data import load_dataset
from .diagnostics.in_training import build_diagnostics
from .errors import ConfigError
from .hooks import Callback, Loop
from .models import build_model
from .optim.correction import build_correction
from .sparse import SparsityCallback, build_sparsifier


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; an unavailable device is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"RunConfig.device: {name!r} is not available on this machine; valid choices here: auto, cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("RunConfig.device: 'mps' is not available on this machine; valid choices here: auto, cpu")
    return torch.device(name)


def data_info_of(bundle) -> dict[str, Any]:
    """What a model needs to know about its data set (kept in checkpoints to rebuild the model)."""
    images = getattr(bundle.train, "images", None)  # streamed splits (imagenet) decode RGB on demand
    return {"num_classes": bundle.num_classes, "in_channels": 3 if images is None else int(images.shape[1]),
            "mean": list(bundle.mean), "std": list(bundle.std), "classes": list(bundle.classes),
            "train_examples": len(bundle.train), "test_examples": len(bundle.test)}


def build_model_for(config: RunConfig, data_info: dict[str, Any]) -> torch.nn.Module:
    normalise = config.input_norm == "dataset"
    return build_model(config.model, data_info["num_classes"], width=config.width,
                       in_channels=data_info["in_channels"],
                       mean=data_info["mean"] if normalise else None, std=data_info["std"] if normalise else None)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_callbacks(config: RunConfig, trainer: Loop) -> list[Callback]:
    """Callbacks a config asks for, attached to the loop's model and optimizer."""
    callbacks: list[Callback] = []
    total_steps = config.epochs * len(trainer.train_loader)
    sparsifier = build_sparsifier(config, trainer.model, trainer.optimizer, total_steps)
    correction = build_correction(config, trainer, sparsifier)
    diagnostics = build_diagnostics(config, trainer, correction, sparsifier)
    if diagnostics is not None:  # sees the outgoing full gradient before the correction refreshes it
        callbacks.append(diagnostics)
    if correction is not None:  # rewrites the gradient before the sparsifier's hook masks it
        callbacks.append(correction)
    if sparsifier is not None:
        callbacks.append(SparsityCallback(sparsifier))
    return callbacks


def load_bundle(config: RunConfig):
    """The data set of ``config`` with its ``train_subset``/``test_subset`` applied."""
    bundle = load_dataset(config.dataset, config.data_root)
    if config.train_subset is not None or config.test_subset is not None:
        bundle = bundle.subset(config.train_subset, config.test_subset, seed=config.seed)
    return bundle


def model_from_checkpoint(config: RunConfig, checkpoint: dict[str, Any],
                          device: str | torch.device = "cpu") -> torch.nn.Module:
    """The model of ``config`` with the weights of a training ``checkpoint``, in eval mode."""
    model = build_model_for(config, checkpoint["data_info"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()


def checkpoint_masks(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The sparsity masks saved in a training checkpoint (None for a dense run); never inferred from zeros."""
    state = checkpoint.get("callbacks", {}).get("sparsity")
    if not state:
        return None
    return {name: mask.bool() for name, mask in state["sparsifier"]["masks"]["masks"].items()}
