"""The training loop: ``train(RunConfig) -> RunResult``.

One loop serves every experiment. Per step: the objective turns the batch into a loss, backward
fills ``.grad``, callbacks may rewrite the gradients (``before_optimizer_step``), the optimizer
steps, callbacks act on the new parameters (``after_optimizer_step``), the lr scheduler steps.
Per epoch: optional evaluation, one history row, an atomic checkpoint. A run resumes from its last
checkpoint with model, optimizer, scheduler, callback and RNG states restored; the data order and
augmentation are pure functions of (seed, epoch, step), so a resumed run replays exactly.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .adversarial import build_objective, build_robust_monitor
from .errors import ConfigError
from .build import (build_callbacks, build_model_for, data_info_of, load_bundle,  # noqa: F401  (re-exported)
                    resolve_device, seed_everything)
from .config import RunConfig
from .distributed import all_reduce_mean_, all_reduce_sum_, broadcast_value, convert_batch_norms, world
from .data import make_loaders
from .hooks import Batch, Callback, Objective
from .models import check_model_fits
from .optim import build_optimizer, build_scheduler
from .precision import prepare_model, set_backend_precision, to_memory_format, training_autocast
from .rng import capture_rng_state, restore_rng_state
from .runs import HISTORY_COLUMNS  # noqa: F401  (re-exported: the loop's history columns)
from .runs import (CHECKPOINT_FILE, META_FILE, DamagedRunError, RunFolder, RunResult, check_out_folder,
                   environment_info, history_frame, load_checkpoint, read_json, run_dir_for)

# How often (in steps) the loop checks the loss for divergence. Checking costs a device sync, so it
# is not done every step; a diverged run wastes at most this many steps.
DIVERGENCE_CHECK_EVERY = 20
# A run diverges when its training loss (the mean of the last DIVERGENCE_CHECK_EVERY steps, or of
# an epoch) is not finite or exceeds DIVERGENCE_FACTOR times the loss of a chance-level prediction,
# ln(number of classes): 230 on CIFAR-10, 460 on CIFAR-100; healthy training, adversarial
# objectives included, stays far below. A test loss diverges only when it is not finite: early in
# training BatchNorm's running statistics lag the weights, and healthy runs show test losses in the
# hundreds (synthetic data, VGG-16 x0.125, lr 0.1: 703 after epoch 1 at train loss 2.3, 1.7 by
# epoch 4).
DIVERGENCE_FACTOR = 100.0


class Diverged(RuntimeError):
    """A loss became NaN, infinite, or exploded past the divergence threshold."""

    def __init__(self, message: str, train_loss: float = float("nan")):
        super().__init__(message)
        self.train_loss = train_loss  # the mean training loss of the epoch up to the divergence


def divergence_threshold(num_classes: int) -> float:
    """The loss above which a run counts as diverged (see ``DIVERGENCE_FACTOR``)."""
    return DIVERGENCE_FACTOR * math.log(max(int(num_classes), 2))


def _output_classes(model: torch.nn.Module) -> int:
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return linears[-1].out_features if linears else 10


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, loader) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` over one pass of ``loader`` (eval mode, float32).

    The sums stay on the model's device until the end (one host read per evaluation). The model's
    train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    loss_sum = correct = None
    try:
        for x, y in loader.epoch(0):
            logits = model(x)
            batch_loss = F.cross_entropy(logits.float(), y, reduction="sum").double()
            batch_correct = (logits.argmax(1) == y).sum()
            loss_sum = batch_loss if loss_sum is None else loss_sum + batch_loss
            correct = batch_correct if correct is None else correct + batch_correct
    finally:
        model.train(was_training)
    if loss_sum is None:
        loss_sum = correct = torch.zeros((), dtype=torch.float64)
    totals = torch.stack([loss_sum.double(), correct.double()])
    all_reduce_sum_([totals])  # data-parallel ranks each evaluated their part of every batch
    n = loader.num_examples
    return float(totals[0]) / n, float(totals[1]) / n


@dataclass
class TrainState:
    """Counters of a run; everything here goes into the checkpoint."""

    epoch: int = 0          # completed epochs
    step: int = 0           # optimizer steps taken
    fwd_bwd: int = 0        # example-level forward+backward passes, every auxiliary pass included
    wall_time: float = 0.0  # seconds spent training (evaluation excluded, see eval_time)
    eval_time: float = 0.0  # seconds spent evaluating
    history: list[dict[str, Any]] = field(default_factory=list)


class _LaggedHostValue:
    """Reads a device scalar on the host one check late, so the read never waits for the device.

    On a CUDA device ``push(t)`` starts a non-blocking copy of the 1-D tensor ``t`` into pinned memory
    and returns the values pushed at the previous call (their copy finished long ago), or None the
    first time. On the CPU it returns ``t``'s values at once.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.pending: tuple[torch.Tensor, Any] | None = None

    def push(self, value: torch.Tensor) -> list[float] | None:
        if not self.cuda:
            return value.tolist()
        previous = self.pending
        host = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
        host.copy_(value.detach(), non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.pending = (host, event)
        if previous is None:
            return None
        previous[1].synchronize()
        return previous[0].tolist()


class Trainer:
    """Owns the model, data loaders, optimizer, scheduler and callbacks of one run."""

    def __init__(self, config: RunConfig, model: torch.nn.Module, train_loader, test_loader,
                 device: torch.device, callbacks: Sequence[Callback] = (), objective: Objective | None = None,
                 robust_monitor=None, divergence_loss: float | None = None):
        self.config = config
        self.device = device
        self.model = prepare_model(model.to(device), channels_last=config.channels_last, compile=config.compile)
        self.train_loader = train_loader
        self.test_loader = test_loader
        self.callbacks = list(callbacks)
        self.objective = objective or Objective()
        self.robust_monitor = robust_monitor  # robust_acc at evaluation epochs (adversarial.RobustMonitor)
        self.optimizer = build_optimizer(config, self.model.parameters())
        self.scheduler = build_scheduler(self.optimizer, config, len(train_loader))
        self.state = TrainState()
        self.stop_reason = ""  # why the last run() stopped early (divergence), for the run's meta.json
        self.stop_event = None  # an object with is_set() (threading.Event): set, the run stops at the next step
        self.step_loss: torch.Tensor | None = None  # the detached training loss of the current step
        self.rank, self.world_size = world()
        self.divergence_loss = (divergence_threshold(_output_classes(self.model)) if divergence_loss is None
                                else float(divergence_loss))

    # -- accounting ---------------------------------------------------------------------------
    def count_passes(self, examples: int) -> None:
        """Add example-level forward+backward passes to ``fwd_bwd`` (auxiliary passes call this)."""
        self.state.fwd_bwd += int(examples)

    def autocast(self):
        """The context the run's training passes run in (bf16 autocast, or nothing)."""
        return training_autocast(self.config.precision, self.device)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    # -- one epoch ----------------------------------------------------------------------------
    def train_epoch(self, progress: bool = False) -> dict[str, float]:
        """Train one epoch; returns its train loss/accuracy. Raises :class:`Diverged` on NaN/inf."""
        epoch = self.state.epoch
        self.model.train()
        for callback in self.callbacks:
            callback.on_epoch_begin(self)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        # The divergence check reads the running loss sum every DIVERGENCE_CHECK_EVERY steps; on a GPU
        # the value read is the previous check's (copied asynchronously), so no step waits for the device.
        reader = _LaggedHostValue(self.device)
        checks: list[int] = []  # the step of each check, to name the window read back
        checked_sum, checked_seen, checked_step = 0.0, 0.0, 0  # running sums at the last window judged
        passes_before = self.state.fwd_bwd
        last_lr = self.lr
        channels_last = self.config.channels_last
        params = [p for p in self.model.parameters() if p.requires_grad]
        bar = tqdm(self.train_loader.epoch(epoch), total=len(self.train_loader), leave=False,
                   disable=not progress, desc=f"epoch {epoch + 1}")
        for step_in_epoch, (x, y) in enumerate(bar):
            if self.stop_event is not None and self.stop_event.is_set():
                raise KeyboardInterrupt("stop requested")  # run() ends as interrupted: resumable
            x = to_memory_format(x, channels_last)
            with self.autocast():
                batch = self.objective.prepare(self.model, Batch(x, y, epoch, step_in_epoch))
            self.optimizer.zero_grad(set_to_none=True)
            result = None
            for callback in self.callbacks:
                result = callback.backward(self, batch)
                if result is not None:
                    break
            if result is None:
                with self.autocast():
                    loss, logits = self.objective.loss(self.model, batch)
                loss.backward()
            else:
                loss, logits = result
            if self.world_size > 1:  # the global batch's mean gradient, as one process would have it
                all_reduce_mean_([p.grad for p in params if p.grad is not None], weight=len(batch))
            self.step_loss = loss.detach()
            self.count_passes(len(batch) * self.objective.passes_per_example)
            for callback in self.callbacks:
                callback.before_optimizer_step(self, batch)
            last_lr = self.lr
            self.optimizer.step()
            for callback in self.callbacks:
                callback.after_optimizer_step(self, batch)
            self.scheduler.step()
            self.state.step += 1
            loss_sum += loss.detach().double() * len(batch)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(batch)
            if (step_in_epoch + 1) % DIVERGENCE_CHECK_EVERY == 0:
                checks.append(step_in_epoch + 1)
                totals = torch.stack([loss_sum, loss_sum.new_tensor(float(seen))])
                all_reduce_sum_([totals])
                value = reader.push(totals)
                if value is not None:
                    judged_step = checks[-1] if not reader.cuda else checks[-2]
                    total_loss, total_seen = value
                    window_loss = (total_loss - checked_sum) / (total_seen - checked_seen)
                    self._check_loss(window_loss, f"mean training loss of steps {checked_step + 1}-{judged_step} "
                                                  f"of epoch {epoch + 1}", total_loss / total_seen)
                    checked_sum, checked_seen, checked_step = total_loss, total_seen, judged_step
        totals = torch.stack([loss_sum, correct.double(), loss_sum.new_tensor(float(seen)),
                              loss_sum.new_tensor(float(self.state.fwd_bwd - passes_before))])
        all_reduce_sum_([totals])
        total_loss, total_correct, total_seen, passes = totals.tolist()
        self.state.fwd_bwd = passes_before + int(round(passes))  # every rank's passes
        train_loss = total_loss / max(total_seen, 1)
        self._check_loss(train_loss, f"mean training loss of epoch {epoch + 1}", train_loss)
        return {"train_loss": train_loss, "train_acc": total_correct / max(total_seen, 1), "lr": last_lr}

    def _check_loss(self, value: float, what: str, train_loss: float, limit: float | None = None) -> None:
        limit = self.divergence_loss if limit is None else limit
        if not math.isfinite(value) or value > limit:
            raise Diverged(f"the {what} is {value:.4g} (limit {limit:.4g})", train_loss)

    def evaluate(self) -> tuple[float, float]:
        return evaluate_model(self.model, self.test_loader)

    # -- checkpoints --------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "state": asdict(self.state), "rng": capture_rng_state(),
            "callbacks": {cb.name: cb.state_dict() for cb in self.callbacks},
            "tables": {name: table.to_dict("records") for name, table in self.tables().items()},
        }

    def tables(self) -> dict[str, pd.DataFrame]:
        """The callbacks' side tables (``layer_density``, ...), written beside the history."""
        return {name: table for callback in self.callbacks for name, table in callback.tables().items()}

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.state = TrainState(**checkpoint["state"])
        for callback in self.callbacks:
            callback.load_state_dict(checkpoint["callbacks"].get(callback.name, {}))
        restore_rng_state(checkpoint["rng"])

    # -- the whole run ------------------------------------------------------------------------
    def run(self, on_epoch_end=None, progress: bool = True, stop_after_epoch: int | None = None) -> str:
        """Train until ``config.epochs``; returns the status (completed, diverged or interrupted).

        ``on_epoch_end(trainer)`` runs after each completed epoch (the run store saves there).
        """
        config = self.config
        for callback in self.callbacks:
            callback.on_train_begin(self)
        bar = tqdm(total=config.epochs, initial=self.state.epoch, disable=not progress, desc="training")
        try:
            while self.state.epoch < config.epochs:
                if stop_after_epoch is not None and self.state.epoch >= stop_after_epoch:
                    return "interrupted"
                start = time.perf_counter()
                try:
                    metrics = self.train_epoch(progress=progress)
                except Diverged as error:
                    self.state.wall_time += time.perf_counter() - start
                    self._append_row({"train_loss": error.train_loss, "train_acc": float("nan"), "lr": self.lr},
                                     epoch=self.state.epoch + 1, completed=False)
                    return self._diverged(error)
                self.state.wall_time += time.perf_counter() - start
                self.state.epoch += 1
                if (self.state.epoch % config.eval_every == 0 or self.state.epoch == config.epochs
                        or self.state.epoch in config.robust_eval_epochs):
                    start = time.perf_counter()
                    metrics["test_loss"], metrics["test_acc"] = self.evaluate()
                    last = self.state.epoch == config.epochs
                    if self.robust_monitor is not None and (last or self.robust_monitor.due(self.state.epoch)):
                        metrics.update(self.robust_monitor(self.model, final=last))
                    self.state.eval_time += time.perf_counter() - start
                row = self._append_row(metrics, epoch=self.state.epoch)
                if "test_loss" in metrics:
                    try:
                        self._check_loss(metrics["test_loss"], f"test loss after epoch {self.state.epoch}",
                                         metrics["train_loss"], limit=math.inf)
                    except Diverged as error:  # the weights of this epoch are not checkpointed
                        return self._diverged(error)
                bar.update(1)
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", test_acc=f"{row['test_acc']:.3f}")
                if on_epoch_end is not None:
                    on_epoch_end(self)
        except KeyboardInterrupt:
            tqdm.write("training interrupted; resume with resume=True")
            return "interrupted"
        finally:
            bar.close()
        return "completed"

    def _diverged(self, error: Diverged) -> str:
        self.stop_reason = f"diverged: {error}"
        tqdm.write(f"run {self.stop_reason}")
        return "diverged"

    def _append_row(self, metrics: dict[str, float], epoch: int, completed: bool = True) -> dict[str, Any]:
        row: dict[str, Any] = {"epoch": epoch, "train_loss": metrics["train_loss"], "train_acc": metrics["train_acc"],
                               "test_loss": metrics.get("test_loss", float("nan")),
                               "test_acc": metrics.get("test_acc", float("nan")), "lr": metrics["lr"],
                               "wall_time": self.state.wall_time, "eval_time": self.state.eval_time,
                               "fwd_bwd": self.state.fwd_bwd, "density": 1.0}
        if self.robust_monitor is not None:
            row["robust_acc"] = metrics.get("robust_acc", float("nan"))
            row["robust_n"] = metrics.get("robust_n", 0)
        if completed:  # a diverged epoch has no meaningful callback metrics
            for callback in self.callbacks:
                row.update(callback.epoch_metrics(self))
        self.state.history.append(row)
        return row

    def history(self) -> pd.DataFrame:
        return history_frame(self.state.history)


def check_data_parallel(config: RunConfig, world_size: int) -> None:
    """Refuse, in one line, what a run split over ``world_size`` ranks cannot do: ``fused_passes``
    (a vmap'd pass cannot hold the ranks' collectives, e.g. the global batch statistics)."""
    if config.fused_passes:
        raise ConfigError(f"RunConfig.fused_passes: True is invalid with {world_size} ranks; a vmap'd pass cannot "
                          "hold the ranks' collectives (set fused_passes false: the passes run one after the other)")


def prepare(config: RunConfig) -> tuple[Trainer, dict[str, Any]]:
    """Load the data, build the model and the trainer of ``config`` (nothing is written to disk)."""
    device = resolve_device(config.device)
    rank, world_size = world()
    if world_size > 1:
        check_data_parallel(config, world_size)
    bundle = load_bundle(config)
    data_info = data_info_of(bundle)
    train_loader, test_loader = make_loaders(bundle, config.batch_size, eval_batch_size=config.eval_batch_size,
                                             seed=config.seed, device=device, augment=config.augment,
                                             shard=(rank, world_size))
    smallest = len(train_loader.labels) % config.batch_size or config.batch_size
    if smallest < world_size:
        raise ConfigError(f"RunConfig.batch_size: {config.batch_size} gives a batch of {smallest} examples, fewer "
                          f"than the {world_size} ranks: every rank needs at least one example of every batch")
    set_backend_precision(config.precision, config.tf32, device)
    # a width that cannot fit is refused from an estimate, before anything is allocated
    check_model_fits(config.model, data_info["num_classes"], config.width, in_channels=data_info["in_channels"],
                     device=device)
    seed_everything(config.seed)
    model = build_model_for(config, data_info)
    if world_size > 1:  # batch statistics of the global batch (agent_lab.distributed)
        model = convert_batch_norms(model)
    trainer = Trainer(config, model, train_loader, test_loader, device, objective=build_objective(config),
                      robust_monitor=build_robust_monitor(config, test_loader))
    trainer.callbacks.extend(build_callbacks(config, trainer))
    return trainer, data_info


def train(config: RunConfig | dict[str, Any], out: str | Path = "runs", *, resume: bool = True,
          progress: bool = True, stop_after_epoch: int | None = None, lock_timeout: float | None = None,
          stop: Any = None, on_epoch: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Train ``config`` into the run folder ``out/<run name>`` and return the result.

    With ``resume=True`` a completed (or diverged) run is returned from the store without
    training, once its files match the checksums in its ``meta.json``; an interrupted run
    continues from its last checkpoint; history or side tables that do not match are rewritten
    from the checkpoint. ``resume=False`` starts over. ``stop_after_epoch=k`` stops after epoch k
    with status ``interrupted`` (a budgeted or staged run; a later call resumes it).

    One process trains a run folder at a time: a second call on the same config waits for the
    first (``lock_timeout`` seconds at most; ``None`` waits as long as it takes, ``0`` refuses at
    once) and then returns its result. A damaged checkpoint raises :class:`DamagedRunError`.

    ``stop`` (a ``threading.Event``; set from another thread, e.g. a widget's Stop button) ends the
    run at its next step as ``interrupted``, resumable from its last completed epoch.
    ``on_epoch(row)`` is called with each epoch's history row once the epoch is saved.
    """
    if lock_timeout is not None and (isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float))
                                     or not 0 <= lock_timeout < math.inf):
        raise ValueError(f"lock_timeout: {lock_timeout!r} is invalid; expected a number of seconds >= 0, "
                         "or None to wait as long as it takes")
    if not isinstance(config, RunConfig):
        config = RunConfig.from_dict(dict(config))
    folder = RunFolder(run_dir_for(config, check_out_folder(out)))
    if world()[1] > 1:
        return _train_data_parallel(folder, config, resume, progress, stop_after_epoch, lock_timeout, on_epoch)
    if resume and (cached := folder.served()) is not None:
        return cached

    # Everything that can fail on bad input happens before the run folder is touched.
    trainer, data_info = prepare(config)
    with folder.open(timeout=lock_timeout, notify=tqdm.write):
        if resume and (cached := folder.served()) is not None:  # finished while we waited
            return cached
        trainer.stop_event = stop
        return _train_in(folder, config, trainer, data_info, resume, progress, stop_after_epoch, on_epoch)


def _train_data_parallel(folder: RunFolder, config: RunConfig, resume: bool, progress: bool,
                         stop_after_epoch: int | None, lock_timeout: float | None,
                         on_epoch: Callable[[dict[str, Any]], None] | None) -> RunResult:
    """One run over the ranks of a ``torchrun`` job: rank 0 holds the folder's lock and alone writes the
    folder; it tells the others whether the run is cached, resumed from its checkpoint or new, and
    every rank then trains (or returns the cached run) in step."""
    rank = world()[0]
    trainer, data_info = prepare(config)
    if rank == 0:
        with folder.open(timeout=lock_timeout, notify=tqdm.write):
            if resume and (cached := folder.served()) is not None:
                broadcast_value("cached")
                return cached
            return _train_in(folder, config, trainer, data_info, resume, progress, stop_after_epoch, on_epoch,
                             decided=broadcast_value)
    decision = broadcast_value(None)
    if decision == "cached":
        return folder.served()
    if decision == "resume":
        trainer.restore(_resume_checkpoint(folder, trainer.device))
    status = trainer.run(progress=False, stop_after_epoch=stop_after_epoch)
    return RunResult(config=config, run_dir=folder.path, history=trainer.history(), status=status, meta={})


def _train_in(folder: RunFolder, config: RunConfig, trainer: Trainer, data_info: dict[str, Any], resume: bool,
              progress: bool, stop_after_epoch: int | None,
              on_epoch: Callable[[dict[str, Any]], None] | None = None,
              decided: Callable[[str], Any] | None = None) -> RunResult:
    resumed = resume and (folder.path / CHECKPOINT_FILE).exists()
    if decided is not None:  # data-parallel: the other ranks resume from the same checkpoint, or start
        decided("resume" if resumed else "fresh")
    sessions, resumes = 1, []
    environment = environment_info(trainer.device)
    if resumed:
        trainer.restore(_resume_checkpoint(folder, trainer.device))
        try:
            previous = read_json(folder.path / META_FILE)
            sessions += int(previous.get("sessions", 1))
            resumes = list(previous.get("resumes", []))
        except (OSError, ValueError, TypeError, AttributeError):  # meta.json damaged: the checkpoint is the truth
            previous, sessions = {}, sessions + 1
        changed = resume_differences(previous, environment)
        if changed:
            resumes.append({"epoch": trainer.state.epoch, "changed": changed})
            what = ", ".join(f"{name} {old} -> {new}" for name, (old, new) in changed.items())
            tqdm.write(f"{folder.path.name}: resumed after epoch {trainer.state.epoch} with {what}: from here on the "
                       f"run is not bit-identical to one trained without the interruption (resume with the "
                       f"same settings, e.g. OMP_NUM_THREADS, for that)")
    else:
        folder.start_over()
    execution = {"precision": config.precision, "autocast": "bfloat16" if config.precision == "bf16" else None,
                 "channels_last": config.channels_last, "compile": config.compile,
                 "fused_passes": config.fused_passes, "ranks": trainer.world_size}
    folder.begin(config.to_dict(), {"seed": config.seed, "config_hash": config.config_hash(), "data": data_info,
                                    "execution": execution, "sessions": sessions, **environment,
                                    **({"resumes": resumes} if resumes else {})})

    def save(trainer: Trainer, status: str = "running", new_checkpoint: bool = True, **meta: Any) -> None:
        """Only a completed epoch is checkpointed (``status="running"``): a run that stops keeps the
        checkpoint of its last completed epoch, the one an exact resume starts from."""
        checkpoint = None
        if status == "running" and new_checkpoint:
            checkpoint = {**trainer.checkpoint(), "data_info": data_info}
        folder.save(status, checkpoint=checkpoint, history=trainer.history(), tables=trainer.tables(),
                    epochs_done=trainer.state.epoch, wall_time=trainer.state.wall_time,
                    eval_time=trainer.state.eval_time, fwd_bwd=trainer.state.fwd_bwd, **meta)
        if on_epoch is not None and status == "running" and new_checkpoint:
            on_epoch(dict(trainer.state.history[-1]))

    if trainer.state.epoch:  # resumed: rewrite what the last save may not have finished (side tables, meta)
        save(trainer, new_checkpoint=False)
    status = trainer.run(on_epoch_end=save, progress=progress, stop_after_epoch=stop_after_epoch)
    extra = {}
    if status == "diverged":
        # the diverging epoch's row, for repair_run (the checkpoint holds the epochs before it); as
        # [column, value] pairs because meta.json's keys are sorted
        extra = {"diverged_row": list(trainer.state.history[-1].items()), "stop_reason": trainer.stop_reason}
    save(trainer, status, **extra)
    return RunResult(config=config, run_dir=folder.path, history=trainer.history(), status=status,
                     meta=dict(folder.meta))


# What a run's bits depend on beyond its config and seed: a resume that changes one of these
# continues correctly but not bit-identically (float reductions are ordered differently).
BIT_SETTINGS = ("torch_num_threads", "torch", "device")


def resume_differences(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, list[Any]]:
    """``{setting: [before, now]}`` for the :data:`BIT_SETTINGS` a resume changes (those recorded)."""
    return {name: [previous[name], current[name]] for name in BIT_SETTINGS
            if name in previous and name in current and previous[name] != current[name]}


def _resume_checkpoint(folder: RunFolder, device: torch.device) -> dict[str, Any]:
    """The checkpoint to resume from (its digest adopted by ``folder``), refused when it is not the
    one the run last saved.

    The checkpoint is written before the ``meta.json`` that records its digest, so a run killed
    between the two has a checkpoint one epoch ahead of its meta: that one is accepted.
    """
    path = folder.path / CHECKPOINT_FILE
    checkpoint = load_checkpoint(path, map_location=device)
    try:
        meta = read_json(folder.path / META_FILE)
    except (OSError, ValueError):
        meta = {}  # unreadable meta: the checkpoint (it loaded) is all there is, and it rebuilds the rest
    folder.adopt(CHECKPOINT_FILE)
    recorded = meta.get("files", {}).get(CHECKPOINT_FILE)
    if recorded is not None and folder.files[CHECKPOINT_FILE] != recorded:
        epoch, saved = checkpoint["state"]["epoch"], meta.get("epochs_done")
        if saved is None or epoch != saved + 1:
            raise DamagedRunError(f"{path} is damaged: it does not match the size and SHA-256 recorded in "
                                  f"{META_FILE} (its epoch {epoch}, recorded {saved}); the run must start over: "
                                  f"train again with --no-resume (resume=False)")
    return checkpoint
