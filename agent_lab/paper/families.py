"""The paper's artifacts grouped as the notebooks show them, one family per notebook.

A family lists its artifacts in the paper's order; :func:`family_artifacts` gives those that have
runs at a scale (the cpu scale runs standard training of VGG models on CIFAR-10 only, so e.g. Table 3
is left out there). At the ``smoke`` scale a family notebook reproduces a small representative pick
(``smoke``): the whole BSR-Net family at smoke size is minutes of adversarial toy runs that prove
nothing the pick does not, and the notebooks run at smoke in the test suite.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .artifacts import ARTIFACTS
from .reproduce import check_ids
from .scales import get_scale


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    ids: tuple[str, ...]
    smoke: tuple[str, ...]  # what the family's notebook reproduces at the smoke scale

    def __post_init__(self) -> None:
        unknown = [i for i in (*self.ids, *self.smoke) if i not in ARTIFACTS]
        if unknown:
            raise ValueError(f"Family {self.name}: unknown artifacts {', '.join(unknown)}")


def _figs(*numbers: int) -> tuple[str, ...]:
    return tuple(f"fig{n}" for n in numbers)


FAMILIES: dict[str, Family] = {family.name: family for family in (
    Family("bsr", "BSR-Net: standard and adversarial training at 90/99% sparsity",
           ("table1", "table3", "table5", "table6", *_figs(4, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21,
                                                            22, 23, 24)),
           smoke=("fig7", "fig17")),
    Family("itop", "ITOP: SET-ITOP and RigL-ITOP with SGD, AGENT, SVRG, Adam, MVR",
           ("table4", "table8", *_figs(3, 5, 6, 15, 27)), smoke=("fig3", "table8")),
    Family("rigl", "RigL: dense, 90% and 99% sparsity, SVRG, ĉ* against the correlation", ("table2", "fig25", "fig26"),
           smoke=("table2",)),
    Family("diagnostics", "Gradient variance, correlation and AGENT's coefficient", ("table7", *_figs(1, 2, 26)),
           smoke=("fig26", "fig2")),
)}


def family_artifacts(name: str, scale: str, chosen: str | Sequence[str] | None = None) -> list[str]:
    """The artifacts of family ``name`` a notebook reproduces at ``scale`` (see the module docstring);
    ``chosen`` (a notebook's ``ARTIFACTS`` parameter) overrides them: a list of ids, or one string
    of ids separated by commas or spaces (what ``papermill -p ARTIFACTS "table5,fig7"`` passes)."""
    if name not in FAMILIES:
        raise ValueError(f"family: {name!r} is invalid; valid choices: {', '.join(FAMILIES)}")
    if chosen is not None:
        ids = chosen.replace(",", " ").split() if isinstance(chosen, str) else list(chosen)
        return check_ids(ids)
    family = FAMILIES[name]
    if scale == "smoke":
        return list(family.smoke)
    the_scale = get_scale(scale)
    return [artifact for artifact in family.ids if ARTIFACTS[artifact].arms_at(the_scale)]
