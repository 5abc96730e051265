"""Argument checks shared by the diagnostics; every error names the offending argument."""
from __future__ import annotations

import math
import numbers
from typing import Any

BN_MODES = ("train", "eval", "keep")


def check_nonnegative(name: str, value: Any) -> float:
    """A finite real number >= 0 (bools refused)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if not ok or float(value) < 0:
        raise ValueError(f"{name}={value!r} is invalid; {name} must be a finite real number >= 0")
    return float(value)


def check_replicates(value: Any, name: str = "replicates") -> int:
    """An integer >= 1 (bools refused)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or int(value) < 1:
        raise ValueError(f"{name}={value!r} is invalid; {name} must be an integer >= 1")
    return int(value)


def check_bn_mode(value: Any) -> str:
    if not isinstance(value, str) or value not in BN_MODES:
        raise ValueError(f"bn_mode={value!r} is invalid; valid choices: {', '.join(BN_MODES)}")
    return value


def check_seed(value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or int(value) < 0:
        raise ValueError(f"seed={value!r} is invalid; seed must be an integer >= 0")
    return int(value)


def check_finite_real(name: str, value: Any) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; {name} must be a finite real number")
    return float(value)
