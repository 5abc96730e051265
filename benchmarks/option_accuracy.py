"""The speed options' effect on accuracy: an artifact's arms trained again with each option.

    python benchmarks/option_accuracy.py fig4 [--scale cpu] [--options "c-hat from steps" bf16 ...]
        [--methods A-BSR-Net BSR-Net] [--sparsities 0.99] [--out runs] [--figures figures] [--archive archive]

The baseline runs are the artifact's own (cached when ``agent-lab reproduce`` trained them, or
restored from ``archive/<scale>/``: an option's runs and their archived copies are kept too); each
option's runs go to the same run store, so two processes can share the work and an interrupted call
resumes. Writes ``figures/speed_options/<ids>_<scale>.csv`` and ``.md`` and prints the table:
final test accuracy with and without the option (mean ± std over seeds), the paired difference
(mean ± SE), the reading by the README's similarity rule (±1 point), and time and passes per epoch
relative to the baseline.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from agent_lab.paper.options import SPEED_OPTIONS, option_effects, option_plan
from agent_lab.paper.reproduce import archive_plan, restore_archived, train_all

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
    effects = option_effects(the_plan, results)
    folder = Path(args.figures) / "speed_options"
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{'_'.join(args.artifacts)}_{args.scale}"
    effects.to_csv(stem.with_suffix(".csv"), index=False)
    stem.with_suffix(".md").write_text(effects.to_markdown(index=False, floatfmt=".3g") + "\n")
    print(effects.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"written: {stem}.csv, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
