"""ipywidgets front ends used by the notebooks.

* :class:`ArtifactPanel` -- pick tables/figures of the paper, a scale, seeds, device, methods and
  sparsities; Run / Stop; a live status table of the runs, the curves as they land, then the
  figure and the tables beside the paper's numbers with the claims' verdicts.
* :class:`RunBrowser` -- pick stored runs by their config fields and compare their histories.
* :class:`TrainPanel` -- train one configuration.

All logic lives below (``agent_lab.paper``, ``agent_lab.runs``); the panels only show it.
"""
from .artifact_panel import ArtifactPanel, show_artifact
from .run_browser import RunBrowser
from .train_panel import TrainPanel

__all__ = ["ArtifactPanel", "RunBrowser", "TrainPanel", "show_artifact"]
