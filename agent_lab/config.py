"""RunConfig: one validated dataclass with one field per knob of a training run.

Every field is checked on construction; a bad value raises :class:`ConfigError` with a one-line
message naming the field, the bad value and the valid choices or range. The run store names a
run folder after :meth:`RunConfig.config_hash`, so two equal configs share one cached run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .adversarial.attacks import EVAL_ATTACKS
from .adversarial.monitor import resolved_robust_eval
from .adversarial.objectives import OBJECTIVES
from .data import DATASET_NAMES
from .diagnostics.in_training import DIAGNOSTICS
from .errors import ConfigError
from .models import MODEL_NAMES, is_valid_model_name
from .optim.agent import COEFFICIENT_RULES
from .precision import PRECISIONS
from .optim.correction import CORRECTOR_RULES, OPTIMIZERS, SNAPSHOT_CORRECTORS
from .sparse.engine import GROWTH_MODES
from .sparse.masks import DENSE_LAYER_POLICIES
from .sparse.pipelines import SPARSE_INIT_CHOICES, SPARSE_PIPELINES, parse_nm

__all__ = ["CHOICES", "ConfigError", "CORRECTOR_RULES", "RunConfig", "register_choice"]

# Names a config value may take. Later capabilities register theirs here (see `register_choice`).
CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": tuple(DATASET_NAMES),
    "model": tuple(MODEL_NAMES),
    "pipeline": ("dense", *SPARSE_PIPELINES),
    "sparse_init": SPARSE_INIT_CHOICES,
    "growth": tuple(GROWTH_MODES),
    "dense_layers": DENSE_LAYER_POLICIES,
    "optimizer": OPTIMIZERS,
    "coef_rule": tuple(COEFFICIENT_RULES),
    "weight_decay_mode": ("coupled", "decoupled"),
    "lr_schedule": ("constant", "step", "cosine"),
    "adversarial": tuple(OBJECTIVES),
    "attack_bn": ("eval", "train"),
    "full_grad_objective": ("clean", "adversarial"),
    "robust_eval": ("none", *EVAL_ATTACKS),
    "diagnostics": DIAGNOSTICS,
    "input_norm": ("dataset", "none"),
    "precision": PRECISIONS,
    "c_hat_source": ("refresh", "steps"),
}

# Datasets that cannot be found without a root directory given by the user.
DATASETS_NEEDING_ROOT = ("imagefolder", "imagenet")


def register_choice(field_name: str, value: str) -> None:
    """Make `value` a valid choice of `field_name` (used by capabilities that add names)."""
    if value not in CHOICES[field_name]:
        CHOICES[field_name] = CHOICES[field_name] + (value,)


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


# Optimizers that are their own momentum (MVR/STORM's running estimate d): SGD under them runs
# without heavy-ball momentum, and an explicit nonzero momentum is refused.
MOMENTUM_FREE_OPTIMIZERS = ("mvr", "agent-mvr")


def default_momentum(optimizer: str) -> float:
    """The momentum a config gets when it sets none: 0.9 (SGD momentum, Adam's beta1), 0 for MVR."""
    return 0.0 if optimizer in MOMENTUM_FREE_OPTIMIZERS else 0.9


class OptimizerDefault(float):
    """A momentum filled in from the optimizer's default rather than chosen.

    It is a plain float in every respect that matters (value, equality, hash, JSON, ``config_hash``),
    but it remembers where it came from: ``config.replace(optimizer="mvr")`` and the CLI's
    ``--optimizer mvr`` (whose flag defaults are read from ``RunConfig()``) hand it back to a new
    config, which resolves it again for that config's optimizer instead of taking it as an
    explicit momentum 0.9. ``to_dict`` (``config.json``) writes the plain number.
    """

    __slots__ = ()

    def __reduce__(self):
        return (OptimizerDefault, (float(self),))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, OptimizerDefault):
        return float(value)
    return value


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run. Field names are also the CLI flags."""

    # data
    dataset: str = field(default="cifar10-mini", metadata=_doc("data set name"))
    data_root: str | None = field(default=None, metadata=_doc(
        "data folder (torchvision root, image-folder root or CIFAR-10 JPEG archive)"))
    train_subset: int | None = field(default=None, metadata=_doc(
        "keep this many training examples (class-stratified); all when unset"))
    test_subset: int | None = field(default=None, metadata=_doc(
        "keep this many test examples (class-stratified); all when unset"))
    augment: bool = field(default=True, metadata=_doc(
        "4-pixel zero-padded random crop (+ horizontal flip where the data set allows it)"))
    # model
    model: str = field(default="vgg16", metadata=_doc("architecture ('wrn-D-K' for any wide ResNet)"))
    width: float = field(default=1.0, metadata=_doc("channel-width multiplier (1 = the paper's model)"))
    input_norm: str = field(default="dataset", metadata=_doc(
        "normalisation inside the model: per-channel data set mean/std, or none (raw [0,1] inputs)"))
    # sparsity
    pipeline: str = field(default="dense", metadata=_doc("sparse-training pipeline"))
    sparsity: float = field(default=0.0, metadata=_doc("target fraction of zero maskable weights, in [0, 1)"))
    sparse_init: str | None = field(default=None, metadata=_doc(
        "per-layer density distribution of the masks (pipeline default: erk); nm = structured N:M"))
    update_every: int | None = field(default=None, metadata=_doc("optimizer steps between mask updates (pipeline default)"))
    drop_fraction: float | None = field(default=None, metadata=_doc(
        "fraction of each layer's connections replaced at the first update, cosine-decayed (pipeline default)"))
    t_end: float | None = field(default=None, metadata=_doc(
        "fraction of training after which masks stay fixed (pipeline default)"))
    growth: str | None = field(default=None, metadata=_doc(
        "how grown connections are chosen (pipeline default); optimizer-gradient = the gradient the optimizer is "
        "handed (under AGENT equal to 'gradient' at free positions: the correction covers active ones only); "
        "corrected-gradient = AGENT's g - c(g_old - g~) at every position (RigL-ITOP-G)"))
    dense_layers: str = field(default="none", metadata=_doc("layers kept dense"))
    nm: str | None = field(default=None, metadata=_doc("N:M pattern such as '2:4' (with sparse_init nm)"))
    skip_step_on_update: bool = field(default=False, metadata=_doc(
        "no optimizer step on mask-update steps (as RigL's TensorFlow code and A-RigL)"))
    # optimisation
    optimizer: str = field(default="sgd", metadata=_doc("optimizer"))
    lr: float = field(default=0.1, metadata=_doc("base learning rate"))
    momentum: float | None = field(default=None, metadata=_doc(
        "SGD momentum (Adam: beta1); unset: the optimizer's default, 0.9 (0 for mvr and agent-mvr, "
        "which are their own momentum)"))
    nesterov: bool = field(default=False, metadata=_doc("Nesterov momentum"))
    weight_decay: float = field(default=5e-4, metadata=_doc("weight decay"))
    weight_decay_mode: str = field(default="coupled", metadata=_doc(
        "coupled: L2 term added to the gradient; decoupled: w <- w(1 - wd*lr_t/lr) before the step"))
    # gradient correction (AGENT and its baselines)
    coef_rule: str | None = field(default=None, metadata=_doc(
        "coefficient rule of the correction (default: the optimizer's own; ramp = the published A-BSR-Net schedule)"))
    gamma: float = field(default=0.1, metadata=_doc("AGENT scaling parameter: applied c = gamma * c_hat"))
    alpha: float = field(default=0.3, metadata=_doc("AGENT smoothing: c_hat <- (1-alpha) c_hat + alpha c_hat*"))
    c0: float = field(default=0.1, metadata=_doc("initial c_hat"))
    fixed_c: float = field(default=0.1, metadata=_doc("the applied coefficient of optimizer fixed-c"))
    refresh_every: int | None = field(default=None, metadata=_doc(
        "optimizer steps between snapshot/full-gradient refreshes (default: one epoch)"))
    full_pass_augment: bool = field(default=True, metadata=_doc(
        "augment the refresh's full pass like the training batches (A-ITOP; g~ then estimates what each "
        "step's g(theta~) estimates); false: clean images (A-BSR-Net)"))
    mvr_a: float = field(default=0.1, metadata=_doc("MVR/STORM momentum parameter a"))
    mvr_adaptive: bool = field(default=False, metadata=_doc(
        "STORM's adaptive step size and a (replaces lr and its schedule; mvr and agent-mvr only)"))
    reduce_lr_factor: float = field(default=0.1, metadata=_doc("optimizer reduce-lr: lr multiplier"))
    epochs: int = field(default=200, metadata=_doc("training epochs"))
    batch_size: int = field(default=128, metadata=_doc("training batch size"))
    eval_batch_size: int = field(default=1000, metadata=_doc("evaluation batch size"))
    lr_schedule: str = field(default="step", metadata=_doc("learning-rate schedule"))
    lr_milestones: tuple[float, ...] = field(default=(0.5, 0.75), metadata=_doc(
        "step schedule: fractions of training at which the lr changes"))
    lr_factors: tuple[float, ...] = field(default=(0.1, 0.01), metadata=_doc(
        "step schedule: lr multiplier (of the base lr) from each milestone on"))
    warmup_epochs: float = field(default=0.0, metadata=_doc("linear lr warm-up length in epochs"))
    # adversarial training
    adversarial: str = field(default="none", metadata=_doc(
        "training objective: none (standard), at (Madry PGD training) or trades"))
    epsilon: float = field(default=8 / 255, metadata=_doc("L-inf radius of the attacks, in [0,1] pixel units"))
    attack_step: float = field(default=2 / 255, metadata=_doc("PGD step size of the training attack"))
    attack_steps: int = field(default=10, metadata=_doc("PGD iterations of the training attack"))
    attack_bn: str = field(default="eval", metadata=_doc(
        "BatchNorm mode of the training attack (eval: running statistics, nothing updated); robust "
        "evaluation always attacks the eval-mode network"))
    trades_beta: float = field(default=6.0, metadata=_doc("TRADES weight of the KL term"))
    full_grad_objective: str = field(default="clean", metadata=_doc(
        "objective of AGENT's full-gradient pass in adversarial training: clean (the paper) or adversarial"))
    robust_eval: str | None = field(default=None, metadata=_doc(
        "attack for the robust_acc column (default: pgd20 with adversarial training, else none)"))
    robust_eval_restarts: int = field(default=1, metadata=_doc("restarts of the in-training robust evaluation"))
    robust_eval_subset: int | None = field(default=1000, metadata=_doc(
        "test examples attacked every eval_every epochs (the whole test set at the end; none = always all)"))
    robust_eval_epochs: tuple[int, ...] = field(default=(), metadata=_doc(
        "epochs at which robust_acc is measured on the whole test set, instead of every eval_every epochs "
        "on robust_eval_subset (the paper's accuracy at epoch budgets); the last epoch is always measured",
        hash="when_set"))
    # diagnostics logged during training
    diagnostics: str = field(default="none", metadata=_doc(
        "history diagnostics: correlation (grad_corr of consecutive full gradients, correcting optimizers), "
        "variance (grad_var, var_ratio, c_var_opt each epoch), all"))
    diagnostics_batches: int = field(default=20, metadata=_doc("training batches of the per-epoch variance diagnostic"))
    # bookkeeping
    eval_every: int = field(default=1, metadata=_doc("evaluate on the test set every N epochs (and at the end)"))
    seed: int = field(default=0, metadata=_doc("random seed (model init, data order, augmentation)"))
    device: str = field(default="auto", metadata=_doc("auto, cpu, cuda or cuda:N", hash=False))
    tf32: bool = field(default=True, metadata=_doc("allow TF32 matmuls/convolutions on NVIDIA GPUs"))
    # speed (see agent_lab.precision and the README's performance section)
    precision: str = field(default="fp32", metadata=_doc(
        "training arithmetic: fp32 (TF32 on NVIDIA GPUs as tf32 says), tf32 (TF32 required), bf16 (bfloat16 "
        "autocast on CUDA and CPU); evaluations and diagnostics always run in float32", hash="when_set"))
    channels_last: bool = field(default=False, metadata=_doc(
        "channels-last memory format for the model's weights and the training inputs", hash="when_set"))
    compile: bool = field(default=False, metadata=_doc(
        "torch.compile the model (and AGENT's snapshot, once)", hash="when_set"))
    fused_passes: bool = field(default=False, metadata=_doc(
        "correcting optimizers: the gradients at theta and at the snapshot theta~ on the same batch in one "
        "torch.func vmap call (each step; the refresh's gradient at theta and forward at theta~ alike)",
        hash="when_set"))
    c_hat_source: str = field(default="refresh", metadata=_doc(
        "where AGENT's c_hat* comes from: refresh (Eq. 4: the losses at theta and theta~ over the refresh pass) "
        "or steps (the loss pairs the epoch's steps computed anyway; no extra forward; a deviation from Eq. 4)",
        hash="when_set"))
    full_pass_fraction: float = field(default=1.0, metadata=_doc(
        "fraction of the training set (shuffled batches) the refresh estimates g~ on; 1 = the full gradient",
        hash="when_set"))

    def __post_init__(self) -> None:
        # Values from JSON or the CLI arrive as lists; keep the dataclass hashable and comparable.
        for name in ("lr_milestones", "lr_factors"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(float(v) for v in value))
        if isinstance(self.robust_eval_epochs, (list, tuple)):
            object.__setattr__(self, "robust_eval_epochs", tuple(
                int(v) if isinstance(v, float) and v.is_integer() else v for v in self.robust_eval_epochs))
        # An unset momentum (None), or one that an earlier config filled in from its optimizer, is
        # this optimizer's default; the resolved number is what is stored and hashed.
        if self.momentum is None or isinstance(self.momentum, OptimizerDefault):
            object.__setattr__(self, "momentum", OptimizerDefault(default_momentum(self.optimizer)))
        _validate(self)

    # -- conversions -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"RunConfig: unknown field(s) {', '.join(unknown)}; valid fields: {', '.join(sorted(known))}")
        return cls(**values)

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def config_hash(self) -> str:
        """Stable hash of the fields that change results (not `device`)."""
        # Fields added after runs were stored hash only when set, so older hashes stay valid.
        payload = {f.name: v for f, v in zip(fields(self), self.to_dict().values())
                   if f.metadata.get("hash", True) is True
                   or (f.metadata.get("hash") == "when_set" and getattr(self, f.name) != f.default)}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def run_name(self) -> str:
        """Readable, unique folder name: model, data, pipeline, optimizer, adversarial objective, seed, hash."""
        sparse = "" if self.pipeline == "dense" else f"{self.sparsity:g}"
        adversarial = "" if self.adversarial == "none" else f"_{self.adversarial}"
        return (f"{self.model}-w{self.width:g}_{self.dataset}_{self.pipeline}{sparse}_"
                f"{self.optimizer}{adversarial}_s{self.seed}_{self.config_hash()}")


def _fail(name: str, value: Any, expected: str) -> None:
    raise ConfigError(f"RunConfig.{name}: {value!r} is invalid; {expected}")


def _check_choice(cfg: RunConfig, name: str) -> None:
    value = getattr(cfg, name)
    if name == "model" and isinstance(value, str) and is_valid_model_name(value):
        return
    if value not in CHOICES[name]:
        extra = " (or 'wrn-D-K' with (D-4) divisible by 6)" if name == "model" else ""
        _fail(name, value, f"valid choices: {', '.join(CHOICES[name])}{extra}")


def _check_number(cfg: RunConfig, name: str, kind: type, low: float | None = None, high: float | None = None,
                  low_open: bool = False, high_open: bool = False) -> None:
    value = getattr(cfg, name)
    ok_type = isinstance(value, kind) and not isinstance(value, bool) if kind is int else (
        isinstance(value, (int, float)) and not isinstance(value, bool))
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    rng = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    if not ok_type or not math.isfinite(value):
        _fail(name, value, f"expected a finite {kind.__name__} in {rng}")
    if low is not None and (value < low or (low_open and value == low)):
        _fail(name, value, f"must be in {rng}")
    if high is not None and (value > high or (high_open and value == high)):
        _fail(name, value, f"must be in {rng}")


def _validate(cfg: RunConfig) -> None:
    for name in ("dataset", "model", "pipeline", "optimizer", "weight_decay_mode", "lr_schedule",
                 "adversarial", "input_norm", "dense_layers", "attack_bn", "full_grad_objective", "diagnostics",
                 "precision", "c_hat_source"):
        _check_choice(cfg, name)
    for name in ("sparse_init", "growth", "coef_rule", "robust_eval"):
        if getattr(cfg, name) is not None:
            _check_choice(cfg, name)
    for name in ("augment", "nesterov", "tf32", "skip_step_on_update", "mvr_adaptive", "full_pass_augment",
                 "channels_last", "compile", "fused_passes"):
        if not isinstance(getattr(cfg, name), bool):
            _fail(name, getattr(cfg, name), "expected true or false")
    _check_number(cfg, "width", float, 0, None, low_open=True)
    _check_number(cfg, "sparsity", float, 0, 1, high_open=True)
    _check_number(cfg, "lr", float, 0, None, low_open=True)
    _check_number(cfg, "momentum", float, 0, 1, high_open=True)
    _check_number(cfg, "weight_decay", float, 0)
    _check_number(cfg, "epochs", int, 1)
    _check_number(cfg, "batch_size", int, 1)
    _check_number(cfg, "eval_batch_size", int, 1)
    _check_number(cfg, "warmup_epochs", float, 0, cfg.epochs)
    _check_number(cfg, "eval_every", int, 1)
    _check_number(cfg, "seed", int, 0)
    for name in ("train_subset", "test_subset"):
        if getattr(cfg, name) is not None:
            _check_number(cfg, name, int, 1)
    _validate_sparse(cfg)
    _validate_correction(cfg)
    _validate_adversarial(cfg)
    _check_number(cfg, "diagnostics_batches", int, 2)
    if cfg.diagnostics in ("correlation", "all") and cfg.optimizer not in CORRECTOR_RULES:
        _fail("diagnostics", cfg.diagnostics, "the gradient correlation compares AGENT's full gradients: it needs a "
              f"correcting optimizer ({', '.join(CORRECTOR_RULES)}); 'variance' works with any")
    if cfg.nesterov and cfg.momentum == 0:
        _fail("nesterov", cfg.nesterov, "Nesterov momentum needs momentum > 0")
    if len(cfg.lr_milestones) != len(cfg.lr_factors):
        _fail("lr_factors", cfg.lr_factors, f"needs one factor per milestone ({len(cfg.lr_milestones)} milestones)")
    if any(not 0 < m < 1 for m in cfg.lr_milestones) or list(cfg.lr_milestones) != sorted(cfg.lr_milestones):
        _fail("lr_milestones", cfg.lr_milestones, "expected increasing fractions of training in (0, 1)")
    if any(not (math.isfinite(f) and f > 0) for f in cfg.lr_factors):
        _fail("lr_factors", cfg.lr_factors, "expected positive finite multipliers")
    device = cfg.device
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda", "mps") or
                                           (device.startswith("cuda:") and device[5:].isdigit())):
        _fail("device", device, "valid choices: auto, cpu, cuda, cuda:N, mps")
    if cfg.dataset in DATASETS_NEEDING_ROOT and cfg.data_root is None:
        _fail("data_root", None, f"dataset {cfg.dataset!r} needs a data_root folder")
    if cfg.data_root is not None and not Path(cfg.data_root).expanduser().exists():
        _fail("data_root", cfg.data_root, "the path does not exist")


def _validate_sparse(cfg: RunConfig) -> None:
    sparse_knobs = ("sparse_init", "update_every", "drop_fraction", "t_end", "growth", "nm")
    if cfg.pipeline == "dense":
        if cfg.sparsity != 0:
            _fail("sparsity", cfg.sparsity, "pipeline 'dense' trains every weight: use sparsity 0 or a sparse pipeline")
        for name in sparse_knobs:
            if getattr(cfg, name) is not None:
                _fail(name, getattr(cfg, name), "only applies to sparse pipelines; pipeline is 'dense'")
        return
    if cfg.sparsity == 0:
        _fail("sparsity", cfg.sparsity, f"pipeline {cfg.pipeline!r} needs a sparsity in (0, 1)")
    if cfg.update_every is not None:
        _check_number(cfg, "update_every", int, 1)
    if cfg.drop_fraction is not None:
        _check_number(cfg, "drop_fraction", float, 0, 1, low_open=True, high_open=True)
    if cfg.t_end is not None:
        _check_number(cfg, "t_end", float, 0, 1, low_open=True)
    if cfg.pipeline in ("static", "bsr"):
        for name in ("update_every", "drop_fraction", "t_end", "growth"):
            if getattr(cfg, name) is not None:
                _fail(name, getattr(cfg, name), f"pipeline {cfg.pipeline!r} has no scheduled drop/grow updates")
    if cfg.growth == "corrected-gradient" and cfg.optimizer not in CORRECTOR_RULES:
        _fail("growth", cfg.growth, f"it scores a gradient corrector's ĝ; optimizer {cfg.optimizer!r} has none "
                                    f"(valid optimizers: {', '.join(CORRECTOR_RULES)})")
    if cfg.sparse_init == "bsr-vgg16" and (cfg.pipeline != "bsr" or cfg.model != "vgg16"):
        _fail("sparse_init", cfg.sparse_init, "BSR-Net's VGG-16 density table needs pipeline 'bsr' and model 'vgg16'")
    if (cfg.sparse_init == "nm") != (cfg.nm is not None):
        _fail("nm", cfg.nm, "sparse_init 'nm' and an 'N:M' pattern go together")
    if cfg.nm is not None:
        if cfg.pipeline != "static":
            _fail("nm", cfg.nm, "structured N:M masks are offered with pipeline 'static'")
        try:
            n, m = parse_nm(cfg.nm)
        except ValueError as error:
            raise ConfigError(f"RunConfig.{error}") from None
        if abs(cfg.sparsity - (1 - n / m)) > 1e-9:
            _fail("sparsity", cfg.sparsity, f"N:M {cfg.nm} means sparsity {1 - n / m:g}")


def _validate_adversarial(cfg: RunConfig) -> None:
    _check_number(cfg, "epsilon", float, 0, 1)
    _check_number(cfg, "attack_step", float, 0, 1)
    _check_number(cfg, "attack_steps", int, 0)
    _check_number(cfg, "trades_beta", float, 0)
    _check_number(cfg, "robust_eval_restarts", int, 1)
    if cfg.robust_eval_subset is not None:
        _check_number(cfg, "robust_eval_subset", int, 1)
    epochs = cfg.robust_eval_epochs
    if not isinstance(epochs, tuple) or any(isinstance(e, bool) or not isinstance(e, int) or not 1 <= e <= cfg.epochs
                                            for e in epochs) or list(epochs) != sorted(set(epochs)):
        _fail("robust_eval_epochs", epochs, f"expected increasing whole epochs in 1..{cfg.epochs} (epochs)")
    if epochs and resolved_robust_eval(cfg) == "none":
        _fail("robust_eval_epochs", epochs, "needs a robust evaluation: set robust_eval (e.g. pgd50) or adversarial")
    if cfg.trades_beta != 6.0 and cfg.adversarial != "trades":
        _fail("trades_beta", cfg.trades_beta, f"only applies to adversarial 'trades'; adversarial is {cfg.adversarial!r}")
    if cfg.full_grad_objective != "clean" and (cfg.adversarial == "none" or cfg.optimizer not in CORRECTOR_RULES):
        _fail("full_grad_objective", cfg.full_grad_objective,
              "only applies to adversarial training with a correcting optimizer "
              f"({', '.join(CORRECTOR_RULES)})")


def _validate_correction(cfg: RunConfig) -> None:
    if cfg.coef_rule is not None and cfg.optimizer not in CORRECTOR_RULES:
        _fail("coef_rule", cfg.coef_rule, f"only applies to the correcting optimizers ({', '.join(CORRECTOR_RULES)})")
    _check_number(cfg, "gamma", float, 0, 1, low_open=True)
    _check_number(cfg, "alpha", float, 0, 1, low_open=True)
    _check_number(cfg, "c0", float, 0, 1)
    _check_number(cfg, "fixed_c", float, 0, 1)
    _check_number(cfg, "mvr_a", float, 0, 1, low_open=True)
    _check_number(cfg, "reduce_lr_factor", float, 0, 1, low_open=True)
    if cfg.refresh_every is not None:
        _check_number(cfg, "refresh_every", int, 1)
    if not cfg.full_pass_augment and cfg.optimizer not in CORRECTOR_RULES:
        _fail("full_pass_augment", cfg.full_pass_augment,
              f"only applies to the correcting optimizers ({', '.join(CORRECTOR_RULES)})")
    if cfg.precision == "tf32" and not cfg.tf32:
        _fail("tf32", cfg.tf32, "precision 'tf32' needs TF32 allowed: leave tf32 true, or use precision 'fp32'")
    _check_number(cfg, "full_pass_fraction", float, 0, 1, low_open=True)
    for name, default in (("fused_passes", False), ("c_hat_source", "refresh"), ("full_pass_fraction", 1.0)):
        if getattr(cfg, name) != default and cfg.optimizer not in SNAPSHOT_CORRECTORS:
            _fail(name, getattr(cfg, name), "only applies to the snapshot-correcting optimizers "
                  f"({', '.join(SNAPSHOT_CORRECTORS)}); optimizer is {cfg.optimizer!r}")
    if cfg.fused_passes and cfg.full_grad_objective == "adversarial":
        _fail("fused_passes", cfg.fused_passes, "the adversarial full-gradient objective attacks each model it is "
              "evaluated at, which a batched call cannot do: use full_grad_objective 'clean' or fused_passes false")
    if cfg.mvr_adaptive and cfg.optimizer not in ("mvr", "agent-mvr"):
        _fail("mvr_adaptive", cfg.mvr_adaptive, "only applies to optimizers mvr and agent-mvr")
    if cfg.optimizer in MOMENTUM_FREE_OPTIMIZERS and cfg.momentum != 0:
        _fail("momentum", cfg.momentum, f"optimizer {cfg.optimizer!r} is its own momentum: leave momentum unset "
              "(its default is 0 for this optimizer) or set 0")
