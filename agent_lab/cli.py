"""The ``agent-lab`` console script. ``agent-lab train`` takes one flag per RunConfig field.

Each subcommand imports what it runs inside its handler: a deferred import for start-up cost
(``--help`` and argument errors answer without loading the training stack), not for a cycle.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from typing import Sequence

from .config import CHOICES, ConfigError, RunConfig
from .data import DataUnavailableError
from .errors import RunStoreError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _field_type(name: str) -> tuple[type, bool]:
    """(scalar type, is_tuple) of the RunConfig field ``name``, e.g. ``int | None`` -> (int, False)."""
    hint = typing.get_type_hints(RunConfig)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin is tuple:
        return args[0], True
    if origin in (typing.Union, types.UnionType):
        return args[0], False
    return hint, False


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "") else int(text)


def add_config_arguments(parser: argparse.ArgumentParser, defaults: RunConfig | None = None) -> None:
    """One ``--field`` per RunConfig field, typed, with its help text, choices and default."""
    defaults = defaults or RunConfig()
    for field in dataclasses.fields(RunConfig):
        kind, is_tuple = _field_type(field.name)
        default = getattr(defaults, field.name)
        help_text = field.metadata.get("help", "")
        if field.name in CHOICES:
            help_text += f" (choices: {', '.join(CHOICES[field.name])})"
        help_text += f" [default: {default}]"
        flag = f"--{field.name}"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif is_tuple:
            parser.add_argument(flag, type=kind, nargs="*", default=default, metavar=field.name.upper(),
                                help=help_text)
        else:
            converter = _optional_int if (kind is int and default is None) else kind
            parser.add_argument(flag, type=converter, default=default, metavar=field.name.upper(), help=help_text)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)})


def _print_history(result) -> None:
    columns = [c for c in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "wall_time",
                           "fwd_bwd", "density") if c in result.history]
    print(result.history[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def cmd_train(args: argparse.Namespace) -> int:
    from .distributed import init_from_environment
    from .train import train

    config = config_from_args(args)
    rank, _ = init_from_environment(config.device)  # under torchrun: one rank of a data-parallel run
    result = train(config, out=args.out, resume=not args.no_resume, progress=not args.quiet and rank == 0,
                   lock_timeout=args.lock_timeout)
    if rank == 0:
        _print_history(result)
        print(f"status: {result.status}\nrun folder: {result.run_dir}")
    return EXIT_INTERRUPTED if result.status == "interrupted" else 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from .quickstart import run_quickstart

    result = run_quickstart(out=args.out, figures=args.figures, epochs=args.epochs, progress=not args.quiet)
    print(result.table.to_string(index=False))
    print(f"\nfigures and table: {', '.join(str(p) for p in result.figure_paths)}")
    for label, run in result.runs.items():
        print(f"{label} run folder: {run.run_dir}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from .runs import list_runs

    table = list_runs(args.out)
    if table.empty:
        print(f"no runs under {args.out}")
        return 0
    if "heartbeat_age" in table:
        table["heartbeat_age"] = table["heartbeat_age"].map(lambda v: "" if v != v else f"{v:.0f} s ago")
    if "archived" in table:  # restored from an archive: no checkpoint
        table["status"] = [f"{status} (archived)" if archived is True else status
                           for status, archived in zip(table["status"], table["archived"])]
    columns = [c for c in ("run", "status", "epoch", "test_acc", "wall_time", "fwd_bwd", "heartbeat_age") if c in table]
    print(table[columns].fillna("").to_string(index=False))
    for _, row in table[table["status"] == "damaged"].iterrows():
        print(f"{row['run']}: {row['problem']}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .paper import ARTIFACTS, paper_numbers

    if args.numbers is not None:
        numbers = paper_numbers()
        try:
            numbers.to_csv(args.numbers, index=False)
        except OSError as error:
            raise ValueError(f"--numbers: cannot write {args.numbers} ({error.strerror or error}); "
                             "give a file path in a folder that exists") from None
        print(f"{len(numbers)} numbers of {numbers['artifact'].nunique()} tables written to {args.numbers}")
        return 0
    from .paper.reproduce import check_ids

    ids = check_ids(args.artifacts or ["all"])
    counts = paper_numbers().groupby("artifact").size()
    states = costs = timings = None
    if args.timings is not None and not args.cost:
        raise ValueError("--timings: only with --cost (the timings price the runs)")
    if args.scale is not None or args.cost:
        from .paper.reproduce import plan, plan_states
        the_plan = plan(ids, args.scale or "cpu", seeds=args.seeds)
        states = plan_states(the_plan, args.out, args.archive)
        if args.cost:
            from .paper.cost import format_seconds, load_timings, plan_cost
            timings = None if args.timings is None else load_timings(args.timings)
            frame = plan_cost(the_plan, args.out, timings)
            costs = {key: 0.0 if states[key] == "archived" else seconds  # restored, not trained
                     for key, seconds in zip(the_plan.distinct, frame["seconds"])}
        print(f"scale {the_plan.scale.name}: {the_plan.scale.description}; run store {args.out}")
    for spec in (ARTIFACTS[artifact] for artifact in ids):
        printed = f"{counts.get(spec.id, 0)} numbers" if spec.kind == "table" else "no numbers"
        print(f"{spec.id:<8} {spec.title} ({spec.where}; {printed})")
        for claim in spec.claim_texts:
            print(f"         claim: {claim}")
        if spec.unstated:
            print(f"         unstated: {spec.unstated}")
        if states is not None:
            keys = list(dict.fromkeys(run.key for run in the_plan.runs[spec.id]))
            cached = sum(states[k] in ("completed", "diverged") for k in keys)
            line = f"         runs: {len(keys)} needed, {cached} cached"
            for state in ("archived", "queued", "running"):
                count = sum(states[k] == state for k in keys)
                line += f", {count} {state}" if count else ""
            line += f", {len(keys) - cached - sum(states[k] == 'archived' for k in keys)} to train"
            if costs is not None:
                line += f", ~{format_seconds(sum(costs[k] for k in keys))} " + (
                    "on this machine" if timings is None else "at the given timings")
            note = spec.note(the_plan.scale.name)
            print(line + (f" ({note})" if note else ""))
    if costs is not None and timings is not None:
        print(f"total (shared runs once): ~{format_seconds(sum(costs.values()))} on the machine {args.timings} "
              f"was measured on ({len(costs)} distinct runs; models it did not time are priced on this CPU).")
    elif costs is not None:
        print(f"total (shared runs once): ~{format_seconds(sum(costs.values()))} on this machine's CPU "
              f"({len(costs)} distinct runs). For a GPU, run `python benchmarks/suite.py` there and pass its "
              "JSON with --timings.")
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    from .paper.reproduce import archive_folder, archive_plan, plan

    the_plan = plan(args.artifacts, args.scale, seeds=args.seeds)
    table = archive_plan(the_plan, args.out, args.archive)
    done = table["result"] == "archived"
    print(f"{int(done.sum())} of {len(table)} runs archived in {archive_folder(args.archive, args.scale)}")
    for _, row in table[~done].iterrows():
        print(f"  [{row['result']}: not archived] {row['run']} ({row['label']}, seed {row['seed']})")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .paper.reproduce import artifact_folder, describe_plan, plan, rerender, reproduce, restore_archived

    archive = None if args.no_archive else args.archive
    if args.dry_run:
        the_plan = plan(args.artifacts, args.scale, seeds=args.seeds, device=args.device, labels=args.methods,
                        sparsities=args.sparsities)
        table = describe_plan(the_plan, args.out, archive)
        print(f"scale {the_plan.scale.name}: {the_plan.scale.description}")
        print(f"{len(table)} distinct runs ({(table['state'] == 'completed').sum()} cached) into {args.out}; "
              "each config as the fields that differ from RunConfig's defaults (agent-lab train --help):")
        for _, row in table.iterrows():
            print(f"  [{row['state']}] {row['run']}  ({row['artifacts']}: {row['label']}, {row['facets']}, "
                  f"seed {row['seed']}{', HYDRA' if row['driver'] == 'hydra' else ''})")
            print(f"      {row['config']}")
        return 0
    if args.detach and args.launcher != "submitit":
        raise ValueError("--detach: only with --launcher submitit (local workers end with this command)")
    if args.launcher != "none" and not args.rerender:
        from .experiments.launch import launch
        from .paper.reproduce import run_state

        the_plan = plan(args.artifacts, args.scale, seeds=args.seeds, device=args.device, labels=args.methods,
                        sparsities=args.sparsities)
        restore_archived(the_plan, args.out, archive)
        missing = [run.config for run in the_plan.distinct.values()
                   if run.arm.driver == "train" and run_state(run, args.out) not in ("completed", "diverged", "queued")]
        print(f"{len(missing)} run(s) to train through launcher {args.launcher}")
        if args.launcher == "local":
            devices = None if args.devices is None else [d for d in args.devices.split(",") if d]
            statuses = launch(missing, args.out, "local", jobs=args.jobs, devices=devices)
        else:
            launched = launch(missing, args.out, "submitit", cluster=args.cluster, partition=args.partition,
                              time_minutes=args.time, gpus_per_job=args.gpus_per_job, wait=not args.detach)
            if args.detach:
                for name, job_id in launched.job_ids.items():
                    print(f"  [queued: job {job_id}] {name}")
                print("submitted; `agent-lab list --scale ...` shows them queued / running / cached, and the same "
                      "reproduce command without --launcher renders once they are done")
                return 0
            statuses = launched
        for name, status in statuses.items():
            print(f"  [{status}] {name}")
    if args.rerender:
        results = rerender(args.artifacts, args.scale, figures=args.figures)
    else:
        results = reproduce(args.artifacts, args.scale, seeds=args.seeds, device=args.device, out=args.out,
                            figures=args.figures, progress=not args.quiet, labels=args.methods,
                            sparsities=args.sparsities, archive=archive)
    for artifact, result in results.items():
        print(f"{artifact}: {artifact_folder(args.figures, artifact, args.scale)} ({len(result.paths)} files)")
        for _, row in result.verdicts.iterrows():
            print(f"  [{row['verdict']}] {row['claim']}\n      {row['evidence']}")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    from .runs import repair_run

    run = repair_run(args.run)
    print(f"{run.run_dir}: history, side tables and meta.json rewritten from the checkpoint "
          f"(status {run.status}, {len(run.history)} epochs)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .experiments import evaluate_run

    result = evaluate_run(args.run, attack=args.attack, restarts=args.restarts, epsilon=args.epsilon,
                          limit=args.limit, batch_size=args.batch_size, device=args.device, seed=args.seed,
                          progress=not args.quiet, allow_partial=args.allow_partial)
    summary = result.summary()
    print(f"{args.attack} x {args.restarts} restarts, epsilon {summary['epsilon']:.6g} "
          f"({summary['epsilon'] * 255:g}/255), step {summary['step_size']:.6g}, {summary['n']} test examples")
    print(f"clean accuracy:  {summary['clean_acc']:.4f}\nrobust accuracy: {summary['robust_acc']:.4f}")
    print(f"time: {summary['seconds']:.1f} s; per-example results and summary written to {args.run}")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from .experiments import diagnose_run

    what = [w.strip() for w in args.what.split(",") if w.strip()]
    table = diagnose_run(args.run, what, batches=args.batches, sigma=args.sigma, variance_sigma=args.variance_sigma,
                         replicates=args.replicates, active_only=args.active_only, seed=args.seed,
                         augment=args.augment, device=args.device, allow_partial=args.allow_partial)
    columns = ["metric", "value", "std", "replicates", "sigma", "batches", "n_active", "seconds"]
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    if len(table) and table["run_status"].iloc[0] != "completed":
        print(f"run {table['run_status'].iloc[0]}: measured its checkpoint of epoch {table['epoch'].iloc[0]}")
    print(f"written to {args.run}/diagnostics.json")
    return 0


def cmd_hydra(args: argparse.Namespace) -> int:
    from .experiments import run_hydra

    config = config_from_args(args)
    result = run_hydra(config, out=args.out, sparsity=args.target_sparsity, pretrain_epochs=args.pretrain_epochs,
                       prune_epochs=args.prune_epochs, finetune_epochs=args.finetune_epochs, score_lr=args.score_lr,
                       distribution=args.distribution, finetune_lr=args.finetune_lr, resume=not args.no_resume,
                       progress=not args.quiet)
    columns = [c for c in ("epoch", "phase", "train_loss", "test_acc", "robust_acc", "density", "fwd_bwd")
               if c in result.history]
    print(result.history[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"status: {result.status}\nrun folder: {result.run_dir}")
    return EXIT_INTERRUPTED if result.status == "interrupted" else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-lab", description=(
        "AGENT adaptive gradient correction for sparse training: train, resume and inspect runs; "
        "HYDRA; robust evaluation and gradient diagnostics of stored runs."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train one run (flags are the RunConfig fields)")
    add_config_arguments(train)
    train.add_argument("--out", default="runs", help="folder that holds run folders")
    train.add_argument("--no-resume", action="store_true", help="start over even if the run exists")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--lock-timeout", type=float, default=None, metavar="SECONDS",
                       help="when another process trains the same config into --out, wait at most this long "
                            "(0: refuse at once) [default: wait until it finishes, then show its result]")
    train.set_defaults(handler=cmd_train)

    quick = sub.add_parser("quickstart", help="SGD vs AGENT on a 90%%-sparse VGG-16, bundled CIFAR-10 subset (CPU, minutes)")
    quick.add_argument("--out", default="runs/quickstart", help="folder that holds the run folder")
    quick.add_argument("--figures", default="figures", help="folder for the figure (PNG and PDF)")
    quick.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    quick.add_argument("--quiet", action="store_true", help="no progress bars")
    quick.set_defaults(handler=cmd_quickstart)

    hydra = sub.add_parser("hydra", help="HYDRA: adversarial pre-training, score-based pruning, fine-tuning")
    add_config_arguments(hydra, RunConfig(adversarial="at"))
    hydra.add_argument("--target_sparsity", type=float, required=True, help="fraction of maskable weights pruned")
    hydra.add_argument("--pretrain_epochs", type=_optional_int, default=None, help="[default: epochs]")
    hydra.add_argument("--prune_epochs", type=_optional_int, default=None, help="[default: epochs/5]")
    hydra.add_argument("--finetune_epochs", type=_optional_int, default=None, help="[default: epochs]")
    hydra.add_argument("--score_lr", type=float, default=0.1, help="lr of the importance scores [default: 0.1]")
    hydra.add_argument("--distribution", default="uniform", choices=("uniform", "erk"),
                       help="per-layer pruning ratio [default: uniform, as HYDRA]")
    hydra.add_argument("--finetune_lr", type=float, default=None, help="[default: lr/10, as HYDRA]")
    hydra.add_argument("--out", default="runs", help="folder that holds run folders")
    hydra.add_argument("--no-resume", action="store_true", help="start over even if the run exists")
    hydra.add_argument("--quiet", action="store_true", help="no progress bars")
    hydra.set_defaults(handler=cmd_hydra)

    evaluate = sub.add_parser("evaluate", help="robust accuracy of a stored run (PGD-k with restarts)")
    evaluate.add_argument("--run", required=True, help="run folder (as written by train)")
    evaluate.add_argument("--attack", default="pgd50", choices=("pgd10", "pgd20", "pgd50"),
                          help="pgd50/pgd20: step 2.5*eps/steps; pgd10: step eps/4 [default: pgd50]")
    evaluate.add_argument("--restarts", type=int, default=10, help="random restarts [default: 10]")
    evaluate.add_argument("--epsilon", type=float, default=None, help="L-inf radius [default: the run's]")
    evaluate.add_argument("--limit", type=int, default=None, help="attack a stratified subset of N test examples")
    evaluate.add_argument("--batch-size", type=int, default=None, help="attack batch size [default: the run's eval_batch_size]")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N [default: auto]")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the random starts [default: 0]")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluate.add_argument("--allow-partial", action="store_true",
                          help="attack an interrupted, diverged or running run's last checkpoint too")
    evaluate.set_defaults(handler=cmd_evaluate)

    diagnose = sub.add_parser("diagnose", help="gradient variance and correlation under perturbation of a stored run")
    diagnose.add_argument("--run", required=True, help="run folder (as written by train)")
    diagnose.add_argument("--what", default="variance,correlation",
                          help="comma-separated: variance, correlation [default: both]")
    diagnose.add_argument("--batches", type=int, default=20, help="minibatches of the variance [default: 20]")
    diagnose.add_argument("--sigma", type=float, default=0.015,
                          help="std of the weight perturbation of the correlation (Table 7) [default: 0.015]")
    diagnose.add_argument("--variance-sigma", type=float, default=0.015,
                          help="std of the weight perturbation of the variance replicates [default: 0.015]")
    diagnose.add_argument("--replicates", type=int, default=3, help="perturbation replicates [default: 3]")
    diagnose.add_argument("--active-only", action="store_true",
                          help="perturb only unmasked weights (masked weights stay 0)")
    diagnose.add_argument("--seed", type=int, default=0, help="seed of the perturbations and batches [default: 0]")
    diagnose.add_argument("--augment", action="store_true",
                          help="augment the training images of the passes as in training [default: clean images]")
    diagnose.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N [default: auto]")
    diagnose.add_argument("--allow-partial", action="store_true",
                          help="measure an interrupted, diverged or running run's last checkpoint too")
    diagnose.set_defaults(handler=cmd_diagnose)

    runs = sub.add_parser("runs", help="list the runs under a folder")
    runs.add_argument("--out", default="runs", help="folder that holds run folders")
    runs.set_defaults(handler=cmd_runs)

    listing = sub.add_parser("list", help="the paper's tables and figures: titles, claims, unstated settings")
    listing.add_argument("artifacts", nargs="*", metavar="ID", help="only these: table1..table8, fig1..fig27 "
                                                                   "[default: all]")
    listing.add_argument("--numbers", nargs="?", const="paper_numbers.csv", default=None, metavar="CSV",
                         help="write every number the paper's tables print as one tidy CSV "
                              "(artifact,row,column,metric,value,std,note) [default file: paper_numbers.csv]")
    listing.add_argument("--scale", choices=("smoke", "cpu", "paper"), default=None,
                         help="also show the runs each artifact needs at this scale, cached and to train")
    listing.add_argument("--cost", action="store_true",
                         help="also estimate the time of the runs to train on this machine [scale default: cpu]")
    listing.add_argument("--timings", default=None, metavar="JSON",
                         help="with --cost: price the runs at the per-model, per-method epoch times that "
                              "benchmarks/suite.py measured on another machine (a GPU)")
    listing.add_argument("--seeds", type=int, default=None, help="seeds per arm [default: the scale's]")
    listing.add_argument("--out", default="runs", help="the run store [default: runs]")
    listing.add_argument("--archive", default="archive",
                         help="with --scale: also count the runs ARCHIVE/<scale>/ holds [default: archive]")
    listing.set_defaults(handler=cmd_list)

    reproducing = sub.add_parser("reproduce", help="regenerate tables/figures of the paper: train what is missing, "
                                                   "render beside the paper's numbers, decide its claims")
    reproducing.add_argument("artifacts", nargs="+", metavar="ID", help="table1..table8, fig1..fig27, or all")
    reproducing.add_argument("--scale", choices=("smoke", "cpu", "paper"), default="smoke",
                             help="smoke: seconds; cpu: a laptop, about an hour per family; paper: the paper's "
                                  "settings on a GPU [default: smoke]")
    reproducing.add_argument("--seeds", type=int, default=None, help="seeds per arm [default: the scale's]")
    reproducing.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N [default: auto]")
    reproducing.add_argument("--methods", nargs="+", default=None, metavar="LABEL",
                             help="only these arms, by label (e.g. BSR-Net A-BSR-Net) [default: all]")
    reproducing.add_argument("--sparsities", nargs="+", type=float, default=None, metavar="S",
                             help="only the arms at these sparsities (e.g. 0.99) [default: all]")
    reproducing.add_argument("--out", default="runs", help="the run store [default: runs]")
    reproducing.add_argument("--figures", default="figures", help="output root: figures/<id>/ [default: figures]")
    reproducing.add_argument("--archive", default="archive",
                             help="restore the runs the store lacks from ARCHIVE/<scale>/ (slim copies of finished "
                                  "runs, see `agent-lab archive`) instead of training them [default: archive]")
    reproducing.add_argument("--no-archive", action="store_true", help="never restore from the archive: train them")
    reproducing.add_argument("--dry-run", action="store_true", help="list the runs and their configs, train nothing")
    reproducing.add_argument("--rerender", action="store_true",
                             help="redraw from the histories and measurements saved in figures/<id>/ "
                                  "(no run store needed, nothing trained)")
    reproducing.add_argument("--quiet", action="store_true", help="no progress bars")
    reproducing.add_argument("--launcher", choices=("none", "local", "submitit"), default="none",
                             help="train the missing runs as jobs first: local worker processes or submitit "
                                  "(SLURM) jobs; HYDRA runs and the rendering stay in this process [default: none]")
    reproducing.add_argument("--jobs", type=int, default=1, help="--launcher local: worker processes [default: 1]")
    reproducing.add_argument("--devices", default=None, metavar="0,1,...",
                             help="--launcher local: the devices the workers take in turn (CUDA_VISIBLE_DEVICES)")
    reproducing.add_argument("--cluster", default=None, choices=("slurm", "local", "debug"),
                             help="--launcher submitit: submitit's executor [default: what submitit finds]")
    reproducing.add_argument("--partition", default=None, help="--launcher submitit: the SLURM partition")
    reproducing.add_argument("--time", type=int, default=24 * 60, metavar="MINUTES",
                             help="--launcher submitit: each job's time limit [default: 1440]")
    reproducing.add_argument("--gpus-per-job", type=int, default=1, help="--launcher submitit: GPUs per job")
    reproducing.add_argument("--detach", action="store_true",
                             help="--launcher submitit: submit the jobs and return (nothing rendered); runs queued "
                                  "by an earlier command are not submitted again")
    reproducing.set_defaults(handler=cmd_reproduce)

    archiving = sub.add_parser("archive", help="write slim copies (no checkpoints) of the finished runs of "
                                               "tables/figures, to version them beside the figures")
    archiving.add_argument("artifacts", nargs="+", metavar="ID", help="table1..table8, fig1..fig27, or all")
    archiving.add_argument("--scale", choices=("smoke", "cpu", "paper"), default="cpu",
                           help="the scale of the runs [default: cpu]")
    archiving.add_argument("--seeds", type=int, default=None, help="seeds per arm [default: the scale's]")
    archiving.add_argument("--out", default="runs", help="the run store [default: runs]")
    archiving.add_argument("--archive", default="archive", help="copies go to ARCHIVE/<scale>/ [default: archive]")
    archiving.set_defaults(handler=cmd_archive)

    repair = sub.add_parser("repair", help="rewrite a run's history, side tables and meta.json from its checkpoint")
    repair.add_argument("--run", required=True, help="run folder (as written by train)")
    repair.set_defaults(handler=cmd_repair)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, DataUnavailableError, RunStoreError, FileNotFoundError, ValueError) as error:
        print(f"agent-lab: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
