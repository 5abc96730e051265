"""HYDRA (Sehwag et al., NeurIPS 2020, "HYDRA: Pruning Adversarially Robust Neural Networks").

HYDRA makes the pruning step itself aware of the robust training objective. It has three phases:

1. **pre-training**: the dense network is trained adversarially (AT or TRADES, ``config.adversarial``);
2. **pruning**: the weights are frozen and every maskable weight (Conv2d/Linear, see
   :func:`agent_lab.sparse.masks.maskable_parameters`) gets a real-valued importance score ``s``.
   The forward pass uses ``w * m`` with ``m = 1`` on the top-``k`` of ``|s|`` of each layer and 0
   elsewhere; only the scores are trained, with the same adversarial objective. The top-``k`` has no
   gradient, so the mask is passed straight through: ``dL/d|s| = dL/dw_eff * w``;
3. **fine-tuning**: the mask of the final scores is fixed and the surviving weights are trained
   adversarially again (an :class:`agent_lab.sparse.engine.Sparsifier` keeps pruned weights at 0).

Choices, checked against the authors' code (github.com/inspire-group/hydra):

* **score initialisation** (``score_init="scaled"``, the paper's "scaled initialisation", used by
  all their scripts): ``s = sqrt(6 / fan_in) * w / max|w|`` per layer (``fan_in`` = inputs of one
  output unit, e.g. ``in_channels * kh * kw``). Its top-``k`` is least-weight-magnitude pruning,
  so the pruning phase starts from the magnitude mask. ``score_init="kaiming"`` is their
  non-scaled option (``kaiming_uniform_(s, a=sqrt(5))``, independent of the weights).
* **straight-through gradient**: as in their code, the straight-through estimator acts on
  ``|s|`` and autograd goes through the absolute value, so ``dL/ds = dL/dw_eff * w * sign(s)``
  (``= dL/dw_eff * w`` for positive scores). The sign keeps the update meaningful for negative
  scores (scaled initialisation gives every negative weight a negative score): a connection that
  increases the loss has its ``|s|`` lowered, whatever the sign of ``s``.
* **score optimiser**: SGD, momentum 0.9, lr ``score_lr`` (0.1 as in their configs) with a cosine
  schedule over the pruning phase, and weight decay 1e-4 on the scores (their configs' ``wd``
  applies to the scores in the pruning phase). A uniform shrink of all scores of a layer does not
  change its top-``k`` on its own; it only damps scores that get no gradient.
* **per-layer ratio**: ``distribution="uniform"`` prunes every layer to the same density, as
  HYDRA does (their ``k`` is one ratio for all layers); ``"erk"`` is offered too. Per-layer
  counts come from :func:`agent_lab.sparse.distributions.layer_counts`, so the mask has exactly
  the target number of nonzeros. ``config.dense_layers`` decides which layers are left dense
  (HYDRA: none).
* **BatchNorm and biases in the pruning phase**: only the scores are optimised; every other
  parameter (BatchNorm affine parameters and biases included) is frozen, so all parameters are
  bit-identical before and after the phase. BatchNorm running statistics still update (train
  mode), as in HYDRA. Their code leaves the BatchNorm affine parameters trainable unless
  ``--freeze-bn`` is given; freezing them keeps the phase a pure mask search.
* **fine-tuning** uses the config's optimiser settings (momentum, weight decay, schedule) over
  the fine-tuning epochs at ``finetune_lr``, by default 0.1x the config's lr as the authors do
  (0.01 after pre-training at 0.1).

Epoch numbering, ``fwd_bwd``, ``wall_time`` and ``eval_time`` continue across phases, and so does
the data order (epoch ``e`` of the whole run sees the data order of epoch ``e``). Each finished
phase is checkpointed (``phase_<name>.pt``); with ``resume=True`` a later call skips finished
phases, and a completed run is loaded from its folder without training.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from ..config import RunConfig
from ..hooks import Callback
from ..build import model_from_checkpoint, resolve_device
from ..optim import build_scheduler
from ..rng import capture_rng_state, restore_rng_state
from ..runs import (META_FILE, RunFolder, check_out_folder, environment_info, load_checkpoint, read_json,
                    verify_files)
from ..sparse.distributions import DISTRIBUTIONS, layer_counts
from ..sparse.engine import Sparsifier
from ..sparse.masks import MaskState, maskable_parameters
from ..train import Trainer, TrainState, prepare

PHASES = ("pretrain", "prune", "finetune")
FINETUNE_LR_FACTOR = 0.1  # HYDRA fine-tunes at 0.01 after pre-training at 0.1
SCORE_INITS = ("scaled", "kaiming")
ADVERSARIAL_CHOICES = ("at", "trades")
# Base optimisers only: the gradient-correcting ones need callbacks this pipeline does not build.
OPTIMIZER_CHOICES = ("sgd", "adam")
SCORE_MOMENTUM = 0.9
SCORE_WEIGHT_DECAY = 1e-4


def phase_file(phase: str) -> str:
    return f"phase_{phase}.pt"


# --------------------------------------------------------------------------------------------
# Scores and the top-k mask
# --------------------------------------------------------------------------------------------

def topk_mask(magnitude: torch.Tensor, k: int) -> torch.Tensor:
    """Bool tensor shaped like ``magnitude``, True at its ``k`` largest entries (exactly ``k``)."""
    mask = torch.zeros(magnitude.numel(), dtype=torch.bool, device=magnitude.device)
    mask[torch.topk(magnitude.detach().flatten(), k, sorted=False).indices] = True
    return mask.view_as(magnitude)


class _StraightThroughTopK(torch.autograd.Function):
    """Forward: the 0/1 top-k mask of ``magnitude``; backward: the gradient passes unchanged."""

    @staticmethod
    def forward(ctx, magnitude: torch.Tensor, k: int) -> torch.Tensor:
        return topk_mask(magnitude, k).to(magnitude.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class ScoreMask(nn.Module):
    """Parametrization ``weight -> weight * topk(|scores|, k)`` with trainable ``scores``."""

    def __init__(self, scores: torch.Tensor, k: int) -> None:
        super().__init__()
        if not 0 <= k <= scores.numel():
            raise ValueError(f"k: {k} is invalid for a layer of {scores.numel()} weights")
        self.scores = nn.Parameter(scores.detach().clone())
        self.k = int(k)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * _StraightThroughTopK.apply(self.scores.abs(), self.k)

    def mask(self) -> torch.Tensor:
        return topk_mask(self.scores.abs(), self.k)


@torch.no_grad()
def initial_scores(weight: torch.Tensor, init: str = "scaled") -> torch.Tensor:
    """HYDRA's score initialisation of one layer: ``scaled`` or ``kaiming`` (see the module doc)."""
    if init == "scaled":
        fan_in = weight[0].numel()
        return math.sqrt(6.0 / fan_in) * weight / weight.abs().max().clamp_min(torch.finfo(weight.dtype).tiny)
    if init == "kaiming":
        scores = torch.empty_like(weight)
        nn.init.kaiming_uniform_(scores, a=math.sqrt(5))
        return scores
    raise ValueError(f"score_init: {init!r} is invalid; valid choices: {', '.join(SCORE_INITS)}")


def _owner(model: nn.Module, param_name: str) -> nn.Module:
    prefix = param_name.rpartition(".")[0]
    return model.get_submodule(prefix) if prefix else model


def attach_scores(model: nn.Module, counts: dict[str, int], init: str = "scaled") -> dict[str, nn.Parameter]:
    """Put a :class:`ScoreMask` on every weight named in ``counts`` (keeping ``counts[name]``
    weights); returns the score parameters by weight name."""
    scores = {}
    for name, k in counts.items():
        module = _owner(model, name)
        parametrization = ScoreMask(initial_scores(module.weight, init), k)
        parametrize.register_parametrization(module, "weight", parametrization)
        scores[name] = parametrization.scores
    return scores


def detach_scores(model: nn.Module, names) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Remove the score parametrizations of ``names`` (the plain, unmasked weights come back);
    returns ``(masks, scores)`` by weight name."""
    masks, scores = {}, {}
    for name in names:
        module = _owner(model, name)
        parametrization = module.parametrizations.weight[0]
        masks[name] = parametrization.mask()
        scores[name] = parametrization.scores.detach().clone()
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
    return masks, scores


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

@dataclass
class HydraResult:
    history: pd.DataFrame             # one row per epoch over all phases, with a ``phase`` column
    model: torch.nn.Module            # the final sparse model (plain weights, masked ones exactly 0)
    masks: dict[str, torch.Tensor]    # final bool masks by parameter name
    run_dir: Path
    status: str                       # "completed" (or "diverged"/"interrupted" for a run that stopped)

    @property
    def final(self) -> dict[str, Any]:
        """The last history row."""
        return self.history.iloc[-1].to_dict()


def hydra_phase_epochs(config: RunConfig) -> tuple[int, int, int]:
    """Default (pretrain, prune, finetune) epochs: ``config.epochs`` is the budget of each weight-
    training phase and pruning gets a fifth of it (HYDRA's paper: 100 / 20 / 100)."""
    return config.epochs, max(1, round(config.epochs / 5)), config.epochs


class _PhaseColumns(Callback):
    """Adds ``phase`` (and the mask's ``density`` once there is a mask) to each history row."""

    name = "hydra_phase"

    def __init__(self, phase: str, density: float | None = None) -> None:
        self.phase, self.density = phase, density

    def epoch_metrics(self, trainer) -> dict[str, Any]:
        return {"phase": self.phase} if self.density is None else {"phase": self.phase, "density": self.density}


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: {value!r} is invalid; expected an integer >= 1")
    return value


def _validate(config: RunConfig, sparsity, epochs, score_lr, score_init, distribution) -> None:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0 < sparsity < 1:
        raise ValueError(f"sparsity: {sparsity!r} is invalid; HYDRA needs a target sparsity in (0, 1)")
    if config.adversarial not in ADVERSARIAL_CHOICES:
        raise ValueError(f"RunConfig.adversarial: {config.adversarial!r} is invalid for HYDRA; valid choices: "
                         f"{', '.join(ADVERSARIAL_CHOICES)}")
    if config.pipeline != "dense":
        raise ValueError(f"RunConfig.pipeline: {config.pipeline!r} is invalid for HYDRA; use 'dense' (HYDRA "
                         f"prunes by itself; the target is the sparsity argument)")
    if config.optimizer not in OPTIMIZER_CHOICES:
        raise ValueError(f"RunConfig.optimizer: {config.optimizer!r} is invalid for HYDRA; valid choices: "
                         f"{', '.join(OPTIMIZER_CHOICES)}")
    for name, value in zip(("pretrain_epochs", "prune_epochs", "finetune_epochs"), epochs):
        _check_int(name, value)
    if isinstance(score_lr, bool) or not isinstance(score_lr, (int, float)) or not (0 < score_lr < math.inf):
        raise ValueError(f"score_lr: {score_lr!r} is invalid; expected a finite number > 0")
    if score_init not in SCORE_INITS:
        raise ValueError(f"score_init: {score_init!r} is invalid; valid choices: {', '.join(SCORE_INITS)}")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution: {distribution!r} is invalid; valid choices: {', '.join(DISTRIBUTIONS)}")
    # The lr schedule (warm-up included) runs over each weight-training phase: it must fit.
    config.replace(epochs=epochs[0])
    config.replace(epochs=epochs[2])


def _run_dir(config: RunConfig, out, hydra_args: dict[str, Any]) -> Path:
    blob = json.dumps({"config": config.config_hash(), "hydra": hydra_args}, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    name = (f"hydra_{config.model}-w{config.width:g}_{config.dataset}_{config.adversarial}"
            f"_sp{hydra_args['sparsity']:g}_s{config.seed}_{digest}")
    return Path(out).expanduser() / name


def _ordered(history: pd.DataFrame) -> pd.DataFrame:
    if "phase" not in history:
        return history
    columns = list(history.columns)
    columns.remove("phase")
    columns.insert(columns.index("epoch") + 1, "phase")
    return history[columns]


def _load_completed(config: RunConfig, run_dir: Path) -> HydraResult:
    verify_files(run_dir, read_json(run_dir / META_FILE))
    device = resolve_device(config.device)
    checkpoint = load_checkpoint(run_dir / phase_file("finetune"), map_location=device)
    model = model_from_checkpoint(config, checkpoint, device).train()  # as a freshly trained HYDRA leaves it
    history = _ordered(pd.DataFrame(checkpoint["state"]["history"]))
    return HydraResult(history=history, model=model, masks=checkpoint["masks"], run_dir=run_dir,
                       status="completed")


def run_hydra(config: RunConfig, out: str | Path = "runs", *, sparsity: float, pretrain_epochs: int | None = None,
              prune_epochs: int | None = None, finetune_epochs: int | None = None, score_lr: float = 0.1,
              score_init: str = "scaled", distribution: str = "uniform", finetune_lr: float | None = None,
              resume: bool = True, progress: bool = True) -> HydraResult:
    """HYDRA on ``config`` (a dense adversarial config) to ``sparsity``, in the run folder
    ``out/hydra_..._<hash>``.

    Phase epochs default to :func:`hydra_phase_epochs`. ``finetune_lr`` defaults to 0.1 × ``config.lr``
    (HYDRA fine-tunes at a tenth of the pre-training lr). With ``resume=True`` finished phases are
    loaded from their checkpoints (a completed run is returned without training); ``resume=False``
    starts over. Bad arguments raise ``ValueError`` naming the argument or field, before anything
    is written.
    """
    if not isinstance(config, RunConfig):
        config = RunConfig.from_dict(dict(config))
    epochs = tuple(given if given is not None else default for given, default in
                   zip((pretrain_epochs, prune_epochs, finetune_epochs), hydra_phase_epochs(config)))
    _validate(config, sparsity, epochs, score_lr, score_init, distribution)
    finetune_lr = FINETUNE_LR_FACTOR * config.lr if finetune_lr is None else finetune_lr
    if isinstance(finetune_lr, bool) or not isinstance(finetune_lr, (int, float)) or not 0 < finetune_lr < math.inf:
        raise ValueError(f"finetune_lr: {finetune_lr!r} is invalid; expected a finite number > 0")
    hydra_args = {"sparsity": float(sparsity), "pretrain_epochs": epochs[0], "prune_epochs": epochs[1],
                  "finetune_epochs": epochs[2], "score_lr": float(score_lr), "score_init": score_init,
                  "distribution": distribution, "score_momentum": SCORE_MOMENTUM,
                  "score_weight_decay": SCORE_WEIGHT_DECAY, "finetune_lr": float(finetune_lr)}
    run_dir = _run_dir(config, check_out_folder(out), hydra_args)
    if resume and (run_dir / phase_file("finetune")).exists():
        return _load_completed(config, run_dir)

    # Everything that can fail on bad input happens before the run folder is touched.
    trainer, data_info = prepare(config.replace(epochs=epochs[0]))
    # One process at a time trains a HYDRA folder; a second one waits, then finds the finished run.
    folder = RunFolder(run_dir).open(notify=tqdm.write)
    try:
        if resume and (run_dir / phase_file("finetune")).exists():
            return _load_completed(config, run_dir)
        model, device = trainer.model, trainer.device
        objective, monitor = trainer.objective, trainer.robust_monitor
        loaders = (trainer.train_loader, trainer.test_loader)
        params = maskable_parameters(model, config.dense_layers)
        counts = layer_counts({name: p.shape for name, p in params.items()}, float(sparsity), distribution)
        density = sum(counts.values()) / sum(p.numel() for p in params.values())

        state, masks, done = TrainState(), None, 0
        if resume:
            for index, phase in enumerate(PHASES):
                if (run_dir / phase_file(phase)).exists():
                    checkpoint = load_checkpoint(run_dir / phase_file(phase), map_location=device)
                    folder.adopt(phase_file(phase))
                    done = index + 1
            if done:
                model.load_state_dict(checkpoint["model"])
                state = TrainState(**checkpoint["state"])
                masks = checkpoint.get("masks")
                restore_rng_state(checkpoint["rng"])
        if not done:
            folder.start_over()
        folder.begin({**config.to_dict(), "hydra": hydra_args},
                     {"seed": config.seed, "config_hash": config.config_hash(), "hydra": hydra_args, "data": data_info,
                      **environment_info(device)})

        def counters(trainer) -> dict[str, Any]:
            return {"epochs_done": trainer.state.epoch, "wall_time": trainer.state.wall_time,
                    "eval_time": trainer.state.eval_time, "fwd_bwd": trainer.state.fwd_bwd}

        def save_history(trainer) -> None:
            folder.save(history=_ordered(trainer.history()), **counters(trainer))

        def save_phase(phase: str, trainer, **extra) -> None:
            checkpoint = {"phase": phase, "model": model.state_dict(), "state": asdict(trainer.state),
                          "rng": capture_rng_state(), "data_info": data_info, **extra}
            folder.save(checkpoint=checkpoint, checkpoint_file=phase_file(phase), phase=phase, **counters(trainer))

        def phase_trainer(index: int, callback: Callback):
            """A trainer for phase ``index`` that continues the run's counters, history and data order."""
            n = epochs[index]
            phase_config = config.replace(lr=finetune_lr) if PHASES[index] == "finetune" else config
            trainer = Trainer(phase_config.replace(epochs=state.epoch + n), model, *loaders, device, callbacks=[callback],
                              objective=objective, robust_monitor=monitor)
            trainer.state = state  # shared: the phase adds its epochs, passes and rows to the run's state
            return trainer, phase_config.replace(epochs=n)

        def finish(status: str, trainer) -> HydraResult:
            history = _ordered(trainer.history())
            folder.save(status, history=history, **counters(trainer))
            return HydraResult(history=history, model=model, masks=masks or {}, run_dir=run_dir, status=status)

        if done < 1:
            trainer, schedule = phase_trainer(0, _PhaseColumns("pretrain"))
            trainer.scheduler = build_scheduler(trainer.optimizer, schedule, len(trainer.train_loader))
            status = trainer.run(on_epoch_end=save_history, progress=progress)
            if status != "completed":
                return finish(status, trainer)
            save_phase("pretrain", trainer)

        if done < 2:
            trainable = {p: p.requires_grad for p in model.parameters()}
            for p in trainable:
                p.requires_grad_(False)
            scores = attach_scores(model, counts, score_init)
            trainer, schedule = phase_trainer(1, _PhaseColumns("prune", density))
            trainer.optimizer = torch.optim.SGD(list(scores.values()), lr=score_lr, momentum=SCORE_MOMENTUM,
                                                weight_decay=SCORE_WEIGHT_DECAY)
            trainer.scheduler = build_scheduler(
                trainer.optimizer, schedule.replace(lr_schedule="cosine", warmup_epochs=0.0), len(trainer.train_loader))
            try:
                status = trainer.run(on_epoch_end=save_history, progress=progress)
            finally:
                masks, final_scores = detach_scores(model, counts)
                for p, flag in trainable.items():
                    p.requires_grad_(flag)
            if status != "completed":
                return finish(status, trainer)
            # The weights are saved as they are (unmasked): the fine-tuning sparsifier masks them.
            save_phase("prune", trainer, masks=masks, scores=final_scores)

        trainer, schedule = phase_trainer(2, _PhaseColumns("finetune", density))
        trainer.scheduler = build_scheduler(trainer.optimizer, schedule, len(trainer.train_loader))
        sparsifier = Sparsifier(model, trainer.optimizer, masks=MaskState(masks), dense_layers=config.dense_layers)
        try:
            status = trainer.run(on_epoch_end=save_history, progress=progress)
        finally:
            sparsifier.remove()
        if status != "completed":
            return finish(status, trainer)
        save_phase("finetune", trainer, masks=masks)
        return finish("completed", trainer)
    finally:
        folder.close()
