"""What one paper artifact (a table or a figure) is: its caption, setting and claims.

A spec is data: the paper's own title, the setting it states (models, data sets, pipelines,
sparsities, objectives), each claim as one sentence with the check that decides it, the settings
the paper leaves unstated with the choice made here, the runs each scale needs (``arms(scale)``),
what is measured from them (epoch budgets, checkpoint diagnostics), the renderer that draws it and
how its cells are named in the paper's printed numbers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .claims import Claim

ID_PATTERN = re.compile(r"(table|fig)([1-9][0-9]?)")


@dataclass(frozen=True)
class ArtifactSpec:
    """One table or figure of the paper.

    ``id``: ``table1``…``table8``, ``fig1``…``fig27``. ``where``: the paper's section or appendix.
    ``setting``: what the caption and text state (model, data, pipeline, sparsity, objective).
    ``claims``: each a sentence the data can hold or not. ``unstated``: settings the paper leaves
    open and the choice made here (empty when it states them all).
    """

    id: str
    title: str
    where: str
    setting: str
    claims: tuple[Claim | str, ...]
    unstated: str = ""
    tags: tuple[str, ...] = field(default=())
    arms: Callable[[Any], tuple] | None = None  # scale -> tuple[Arm, ...]
    facets: tuple[str, ...] = ()
    renderer: str = "curves"
    budgets: tuple[int, ...] = ()
    paper_epochs: int = 200
    measures: tuple[str, ...] = ()  # checkpoint diagnostics: sweep, variance_curve
    sweep_what: tuple[str, ...] = ("variance", "correlation")
    paper_column: Callable[[dict, int], str] | None = None  # facets, budget -> column of paper_numbers
    paper_metric_names: tuple[tuple[str, str], ...] = ()  # our metric -> the paper's (clean_acc -> acc)
    scale_notes: tuple[tuple[str, str], ...] = ()  # scale -> what changes there beyond the scale's rules
    seeds_at: tuple[tuple[str, int], ...] = ()  # scale -> seeds, where not the scale's default

    def __post_init__(self) -> None:
        if not ID_PATTERN.fullmatch(self.id):
            raise ValueError(f"ArtifactSpec.id: {self.id!r} is invalid; expected table<N> or fig<N>")
        if not self.claims:
            raise ValueError(f"ArtifactSpec {self.id}: needs at least one claim")
        object.__setattr__(self, "claims", tuple(c if isinstance(c, Claim) else Claim(c) for c in self.claims))

    @property
    def kind(self) -> str:
        return "table" if self.id.startswith("table") else "figure"

    @property
    def number(self) -> int:
        return int(ID_PATTERN.fullmatch(self.id).group(2))

    @property
    def claim_texts(self) -> tuple[str, ...]:
        return tuple(c.text for c in self.claims)

    @property
    def paper_metrics(self) -> dict[str, str]:
        return dict(self.paper_metric_names)

    def arms_at(self, scale) -> tuple:
        """The arms this artifact runs at ``scale`` (a :class:`~agent_lab.paper.scales.Scale`)."""
        return () if self.arms is None else tuple(self.arms(scale))

    def all_arms(self) -> tuple:
        """The arms at the paper's scale (every arm the artifact knows)."""
        from .scales import SCALES
        return self.arms_at(SCALES["paper"])

    def seeds(self, scale) -> int:
        return dict(self.seeds_at).get(scale.name, scale.seeds)

    def note(self, scale_name: str) -> str:
        return dict(self.scale_notes).get(scale_name, "")
