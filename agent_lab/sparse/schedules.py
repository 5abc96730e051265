"""When masks change, and what fraction of each layer's connections is replaced."""
from __future__ import annotations

import math
from dataclasses import dataclass

DECAYS = ("cosine", "constant")


@dataclass(frozen=True)
class UpdateSchedule:
    """Mask updates every ``update_every`` optimizer steps, strictly before ``end_step``.

    ``step`` below is the number of optimizer steps completed. The drop fraction starts at
    ``drop_fraction`` and, with ``cosine`` decay, falls to ``final_fraction`` at ``end_step``.
    """

    update_every: int
    end_step: int
    drop_fraction: float
    decay: str = "cosine"
    final_fraction: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.update_every, bool) or not isinstance(self.update_every, int) or self.update_every < 1:
            raise ValueError(f"update_every: {self.update_every!r} is invalid; it must be an integer >= 1")
        if isinstance(self.end_step, bool) or not isinstance(self.end_step, int) or self.end_step < 0:
            raise ValueError(f"end_step: {self.end_step!r} is invalid; it must be an integer >= 0")
        for field in ("drop_fraction", "final_fraction"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{field}: {value!r} is invalid; it must be a number in [0, 1]")
        if self.decay not in DECAYS:
            raise ValueError(f"decay: {self.decay!r} is invalid; valid choices: {', '.join(DECAYS)}")

    def is_update_step(self, step: int) -> bool:
        return 0 < step < self.end_step and step % self.update_every == 0

    def fraction(self, step: int) -> float:
        if self.decay == "constant" or self.end_step == 0:
            return float(self.drop_fraction)
        progress = min(max(step, 0), self.end_step) / self.end_step
        return self.final_fraction + (self.drop_fraction - self.final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))
