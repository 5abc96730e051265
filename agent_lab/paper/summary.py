"""The results of a scale as Markdown, from what ``reproduce`` recorded in ``figures/<id>/SOURCES.json``.

``python -m agent_lab.paper.summary cpu`` prints, for every artifact reproduced at that scale, its
claims with their verdicts and evidence, the runs and seeds behind them and the figure's path: the
README's "Results at cpu scale" section is this output.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..runs import read_json
from .artifacts import ARTIFACTS
from .reproduce import SOURCES_FILE, artifact_folder


def results_markdown(scale: str = "cpu", figures: str | Path = "figures") -> str:
    lines = []
    for artifact, spec in ARTIFACTS.items():
        path = artifact_folder(figures, artifact, scale) / SOURCES_FILE
        if not path.exists():
            continue
        entry = read_json(path).get(scale)
        if not entry:
            continue
        runs = entry.get("runs", [])
        if not runs:
            continue
        seeds = entry.get("seeds") or sorted({r["seed"] for r in runs})
        figure = next((f for f in entry.get("files", ()) if f.endswith(".png")), None)
        folder = artifact_folder("figures", artifact, scale).as_posix()
        where = f"[`{folder}/{figure}`]({folder}/{figure})" if figure else f"`{folder}/`"
        count = len({r["run_dir"] for r in runs})
        lines.append(f"**{artifact}** — {spec.title}. {count} run{'s' if count != 1 else ''}, "
                     f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))}; {where}."
                     + (f" {entry['scale_note']}" if entry.get("scale_note") else ""))
        for verdict in entry.get("verdicts", []):
            lines.append(f"- *{verdict['verdict']}*: {verdict['claim']} ({verdict['evidence']})")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(results_markdown(*(sys.argv[1:2] or ["cpu"])))
