"""Adversarial training and robust evaluation: L∞ PGD, AT (Madry), TRADES, PGD-k × restarts.

What plugs into the training loop; HYDRA and the evaluation of stored runs are drivers
(:mod:`agent_lab.experiments`)."""
from .attacks import EVAL_ATTACKS, PGD, attacking, generator_for, named_attack
from .evaluation import RobustResult, robust_evaluate
from .monitor import RobustMonitor, build_robust_monitor, resolved_robust_eval
from .objectives import OBJECTIVES, TRADES, AdversarialObjective, MadryAT, build_objective, training_attack

__all__ = ["EVAL_ATTACKS", "PGD", "attacking", "generator_for", "named_attack", "RobustResult", "robust_evaluate",
           "RobustMonitor", "build_robust_monitor", "resolved_robust_eval", "TRADES", "AdversarialObjective",
           "MadryAT", "OBJECTIVES", "build_objective", "training_attack"]
