"""What one paper artifact (a table or a figure) is: its caption, setting and claims.

A spec is data: the paper's own title, the setting it states (models, data sets, pipelines,
sparsities, objectives), each claim as one sentence the data can decide, and the settings the
paper leaves unstated with the choice made here. The runs each scale needs, what is measured
from them and how it is drawn grow on this record.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

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
    claims: tuple[str, ...]
    unstated: str = ""
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not ID_PATTERN.fullmatch(self.id):
            raise ValueError(f"ArtifactSpec.id: {self.id!r} is invalid; expected table<N> or fig<N>")
        if not self.claims:
            raise ValueError(f"ArtifactSpec {self.id}: needs at least one claim")

    @property
    def kind(self) -> str:
        return "table" if self.id.startswith("table") else "figure"

    @property
    def number(self) -> int:
        return int(ID_PATTERN.fullmatch(self.id).group(2))
