"""The speed options' effect on accuracy: an artifact's arms trained again with each option.

    python benchmarks/option_accuracy.py fig4 [--scale cpu] [--options "c-hat from steps" bf16 ...]
        [--methods A-BSR-Net BSR-Net] [--sparsities 0.99] [--out runs] [--figures figures] [--archive archive]

The baseline runs are the artifact's own (cached when ``agent-lab reproduce`` trained them, or
restored from ``archive/<scale>/``: an option's runs and their archived copies are kept too); each
option's runs go to the same run store, so two processes can share the work and an interrupted call
resumes. Writes ``figures/speed_options/<ids>_<scale>.csv``/``.md`` (the table it prints),
``<ids>_<scale>_seeds.csv``/``.md`` (seed by seed, with the run names), ``<ids>_<scale>.png``/``.pdf``
and an entry in ``SOURCES.json``. The table:
final test accuracy with and without the option (mean ± std over seeds), the paired difference
(mean ± SE), the reading by the README's similarity rule (±1 point), and time and passes per epoch
relative to the baseline.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import platform
import signal
import sys
from pathlib import Path

from agent_lab import __version__
from agent_lab.paper.options import SPEED_OPTIONS, effects_of, option_figure, option_pairs, option_plan
from agent_lab.paper.reproduce import SOURCES_FILE, archive_plan, restore_archived, train_all
from agent_lab.reporting import save_figure, save_table
from agent_lab.runs import read_json, write_json

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifacts", nargs="+", metavar="ID")
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--options", nargs="+", default=list(SPEED_OPTIONS), choices=list(SPEED_OPTIONS))
    parser.add_argument("--methods", nargs="+", default=None, metavar="LABEL")
    parser.add_argument("--sparsities", nargs="+", type=float, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(ROOT / "runs"))
    parser.add_argument("--figures", default=str(ROOT / "figures"))
    parser.add_argument("--archive", default=str(ROOT / "archive"),
                        help="restore runs from ARCHIVE/<scale>/ and archive the finished ones there")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    the_plan = option_plan(args.artifacts, args.scale, args.options, seeds=args.seeds, device=args.device,
                           labels=args.methods, sparsities=args.sparsities)
    restore_archived(the_plan, args.out, args.archive)

    def interrupt(*_):  # `kill` (SIGTERM) stops like Ctrl-C: the run in training saves, the finished ones are archived
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        results = train_all(the_plan, args.out, progress=not args.quiet)
    finally:  # the runs finished so far survive a fresh machine
        archive_plan(the_plan, args.out, args.archive)
    pairs = option_pairs(the_plan, results)
    effects = effects_of(pairs)
    stem = Path(args.figures) / "speed_options" / f"{'_'.join(args.artifacts)}_{args.scale}"
    smoke = "smoke" if args.scale == "smoke" else None  # labelled as such, like every smoke output
    paths = save_table(effects, stem, smoke) + save_table(pairs, stem.with_name(stem.name + "_seeds"), smoke)
    paths += save_figure(option_figure(pairs), stem, smoke)
    sources = stem.parent / SOURCES_FILE
    recorded = read_json(sources) if sources.exists() else {}
    recorded[stem.name] = {"artifacts": args.artifacts, "scale": args.scale, "options": args.options,
                           "library_version": __version__, "host": platform.node(),
                           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                           "runs": sorted({*pairs["baseline_run"], *pairs["option_run"]}),
                           "files": sorted(path.name for path in paths)}
    write_json(sources, recorded)
    print(effects.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print("written: " + ", ".join(str(path) for path in paths + [sources]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
