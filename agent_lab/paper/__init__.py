"""The paper as code: every table and figure of AGENT's paper as a spec, and its printed numbers.

* :data:`ARTIFACTS` -- ``table1``…``table8``, ``fig1``…``fig27``: title, setting, claims, and the
  settings the paper leaves unstated with the choice made here (:class:`ArtifactSpec`).
* :func:`paper_numbers` -- every number the paper's tables print (as the text extraction
  preserves them) as one tidy frame; :data:`MISSING` says what each table lost.
* :func:`artifact_table` -- one row per artifact, what ``agent-lab list`` shows.
"""
from __future__ import annotations

import pandas as pd

from .artifacts import ARTIFACTS
from .numbers import MISSING, PAPER_NUMBERS_FILE, paper_numbers
from .spec import ArtifactSpec

__all__ = ["ARTIFACTS", "ArtifactSpec", "MISSING", "PAPER_NUMBERS_FILE", "artifact_table", "paper_numbers"]


def artifact_table() -> pd.DataFrame:
    """One row per artifact: id, kind, title, where in the paper, claims, and how many numbers it prints."""
    counts = paper_numbers().groupby("artifact").size()
    return pd.DataFrame([{"id": spec.id, "kind": spec.kind, "title": spec.title, "where": spec.where,
                          "claims": " | ".join(spec.claim_texts), "paper_numbers": int(counts.get(spec.id, 0))}
                         for spec in ARTIFACTS.values()])
