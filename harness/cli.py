"""The ``holo-bench`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import shlex
import sys
import textwrap
from pathlib import Path

from holo_bench import suite
from holo_bench.params import close_matches

# The main job, what `holo-bench run` does with no arguments: the standard track's cheap
# optimizers, whose runs are the published archive's (same identities), so the page shows them
# among its records.
DEFAULT_OPTIMIZERS = ["ga", "random"]
DEFAULT_TRACK = "standard"  # without --track or --problem
# A run of problems named without a track.
DEFAULT_SEEDS = "0-4"
DEFAULT_BUDGET = 100_000
DEFAULT_OUT = "runs"
DEFAULT_ARCHIVE = "results"  # the published archive, included in pages when present


def _list(args: argparse.Namespace) -> int:
    if args.what in (None, "problems"):
        _list_problems()
    if args.what in (None, "optimizers"):
        _list_optimizers()
    return 0


def _list_problems() -> None:
    print("suites:")
    for name, members in suite.suites().items():
        print(f"  {name}: {', '.join(members)}")
    print("instances:")
    for name, entry in suite.instances().items():
        print(f"  {name:28s} {entry['spec']:45s} {entry.get('about', '')}")
    print("families (instance seeds):")
    for name, entry in suite.families().items():
        seeds = ",".join(str(seed) for seed in entry["seeds"])
        print(f"  {name:28s} {entry['spec'] + ' seeds ' + seeds:45s} {entry.get('about', '')}")
    print("tracks (holo-bench run --track NAME):")
    for name, entry in suite.tracks().items():
        print(f"  {name:28s} {'suite ' + entry['problems']}, budget {entry['budget']}, "
              f"count {entry['count']}, seeds {entry['seeds']}")
        print(textwrap.fill(entry.get("about", ""), 100, initial_indent=" " * 4,
                            subsequent_indent=" " * 4))


def _list_optimizers() -> None:
    """Each registered optimizer with the first line of its docstring and its parameters'
    defaults, then the ``ng:`` and ``module:Class`` routes."""
    from holo_bench.params import params_dict
    from optimizers.registry import available, optimizer_class

    print("optimizers (--optimizer NAME; --set NAME.PARAMETER=VALUE):")
    for name in sorted(available()):
        try:
            cls = optimizer_class(name)
        except ValueError as err:  # a third party's entry point that does not load
            print(f"  {name:22s} cannot be loaded: {err}")
            continue
        defaults = ", ".join(f"{key}={value}" for key, value in params_dict(cls.Params()).items())
        print(f"  {name:22s} {_first_sentence(inspect.getdoc(cls) or '')}")
        print(textwrap.fill(defaults or "(no parameters)", 100, initial_indent=" " * 25,
                            subsequent_indent=" " * 25))
    print(f"  {'ng:NAME':22s} any optimizer of nevergrad's registry, e.g. ng:DiscreteOnePlusOne "
          "(needs the nevergrad extra; docs/nevergrad.md)")
    print(f"  {'module:Class':22s} an optimizer class importable from the working folder or the "
          "installed packages (docs/submitting-an-optimizer.md)")


def _first_sentence(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, without reST markup."""
    paragraph = " ".join(doc.split("\n\n")[0].split()).replace("``", "")
    return paragraph.split(". ")[0].rstrip(".") + "."


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"1,5,7"`` and mixtures like ``"0-2,9"`` also work."""
    seeds = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            low, high = int(low), int(high) if dash else int(low)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad seed list {text!r}; use e.g. 0-4 or 1,3,5") from None
        if low < 0 or high < low:
            raise argparse.ArgumentTypeError(
                f"bad seed range {part.strip()!r} in {text!r}: seeds are >= 0, "
                "low-high with low <= high")
        seeds.extend(range(low, high + 1))
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seed list {text!r} names a seed twice")
    return seeds


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _set_backend(params: dict[str, dict], backend: str) -> None:
    """``--backend``: the generation backend of every optimizer in the grid that has one."""
    from optimizers.registry import optimizer_class

    takes = [name for name in params
             if "backend" in {f.name for f in dataclasses.fields(optimizer_class(name).Params)}]
    if not takes:
        raise ValueError(f"{backend}: none of {', '.join(params)} has a generation backend")
    for name in takes:
        params[name]["backend"] = backend


def _split_params(assignments: list[str], optimizers: list[str]) -> dict[str, dict]:
    """``--set`` values per optimizer: ``name=value`` for every optimizer that has the parameter
    (at least one must), ``ga.name=value`` for one."""
    from holo_bench.params import split_assignment
    from optimizers.registry import optimizer_class

    params: dict[str, dict] = {name: {} for name in optimizers}
    for assignment in assignments:
        key, value = split_assignment(assignment, "--set")  # typed by the optimizer's Params
        scope, dot, bare = key.rpartition(".")
        if dot and scope not in params:
            raise ValueError(f"{assignment}: {scope!r} is not an optimizer of this grid "
                             f"({', '.join(optimizers)})")
        if dot:
            params[scope][bare] = value
            continue
        takers = [name for name in optimizers
                  if bare in {f.name for f in dataclasses.fields(optimizer_class(name).Params)}]
        if not takers:
            raise ValueError(f"{assignment}: no optimizer of this grid ({', '.join(optimizers)}) "
                             f"has a parameter {bare!r}")
        for name in takers:
            params[name][bare] = value
    return params


def _check_distinct_instances(problems: list[str]) -> None:
    """Every problem builds, and no instance comes twice (a repeated name, or a family that
    holds a listed instance): two jobs of one run would share one folder."""
    seen: dict[str, str] = {}
    for problem in problems:
        spec = suite.make_function(problem).spec
        if spec in seen:
            raise ValueError(f"{seen[spec]!r} and {problem!r} are one instance ({spec}); name "
                             "each instance once")
        seen[spec] = problem


def _argument(name: str, check, *values):
    """``check(*values)``, with a ValueError's message prefixed by the argument it is about."""
    try:
        return check(*values)
    except ValueError as err:
        raise ValueError(f"argument {name}: {err}") from None


def _apply_track(args: argparse.Namespace) -> None:
    """Fill the grid from ``--track``: its problems (or those of them ``--problem`` names), its
    budget and counting rule (which may not be given otherwise) and, unless ``--seeds`` says
    otherwise, its seeds; without a track, ``DEFAULT_TRACK`` if no problem is named either, else
    the defaults."""
    if args.track is None and not args.problem:
        if args.budget is not None or args.count is not None:
            raise ValueError(f"without --problem, run runs the {DEFAULT_TRACK} track, whose budget "
                             f"and counting rule are its own; name the problems (--problem) to "
                             f"choose them")
        args.track = DEFAULT_TRACK
    if args.track is None:
        args.budget = args.budget or DEFAULT_BUDGET
        args.seeds = args.seeds if args.seeds is not None else parse_seeds(DEFAULT_SEEDS)
        return
    tracks = suite.tracks()
    if args.track not in tracks:
        hint = close_matches(args.track, tracks)
        raise ValueError(f"unknown track {args.track!r}{hint}; the tracks are "
                         f"{', '.join(tracks)} (holo-bench list problems)")
    track = tracks[args.track]
    for option, given, value in (("--budget", args.budget, track["budget"]),
                                 ("--count", args.count, track["count"])):
        if given is not None and given != value:
            raise ValueError(f"track {args.track} sets {option} {value}; leave it out")
    members = suite.resolve_problems([track["problems"]])
    outside = [problem for problem in suite.resolve_problems(args.problem or [])
               if suite.make_function(problem).spec not in
               {suite.make_function(member).spec for member in members}]
    if outside:
        raise ValueError(f"{', '.join(outside)} is not on track {args.track} (suite "
                         f"{track['problems']}: {', '.join(suite.suites()[track['problems']])})")
    args.problem = args.problem or [track["problems"]]
    args.budget, args.count = track["budget"], track["count"]
    if args.seeds is None:
        args.seeds = parse_seeds(track["seeds"])


def _run(args: argparse.Namespace) -> int:
    from harness.executors import run_grid
    from harness.runner import make_job
    from optimizers.registry import make_optimizer, optimizer_class

    # The whole grid is validated (and every job identified) before the first job starts; each
    # error names the argument it came from.
    optimizers = args.optimizer or DEFAULT_OPTIMIZERS
    if len(set(optimizers)) != len(optimizers):
        raise ValueError(f"--optimizer names {', '.join(optimizers)}: one of them twice")
    if args.label and len(optimizers) > 1:
        raise ValueError("--label names the runs of a single --optimizer")
    for name in optimizers:
        _argument("--optimizer", optimizer_class, name)
    _argument("--track", _apply_track, args)
    problems = suite.resolve_problems(args.problem)
    _argument("--problem", _check_distinct_instances, problems)
    params = _argument("--set", _split_params, args.set, optimizers)
    if args.backend:
        _argument("--backend", _set_backend, params, args.backend)
    for name in optimizers:
        _argument("--set", make_optimizer, name, params[name])
    jobs = [_argument("--count", make_job, name, problem, seed, args.budget, args.out, params[name],
                      args.count, args.label)
            for name in optimizers for problem in problems for seed in args.seeds]
    try:
        results = run_grid(jobs, executor=args.executor, workers=args.workers,
                           ray_address=args.ray_address, progress=not args.quiet)
    except KeyboardInterrupt as err:
        print(f"holo-bench: stopped by {str(err) or 'SIGINT'}: {_standing(jobs)}; resume with: "
              f"{args.command_line}", file=sys.stderr)
        return 130
    except OSError as err:  # the storage failed, not an optimizer
        print(f"holo-bench: error: cannot write {err.filename or args.out}: "
              f"{err.strerror or err}; nothing already written is lost ({_standing(jobs)}); "
              f"once fixed, resume with: {args.command_line}", file=sys.stderr)
        return 1
    return _report_grid(results, args)


def _standing(jobs) -> str:
    """How far a stopped grid got, from its run folders."""
    from holo_bench.record import ManifestError, read_manifest

    finished = started = 0
    for job in jobs:
        try:
            manifest = read_manifest(job.folder)
        except ManifestError:
            manifest = None
        finished += manifest is not None and manifest.status == "finished"
        started += manifest is not None and manifest.status != "finished"
    return (f"{finished} of {len(jobs)} runs finished, {started} stopped mid-run (resumable), "
            f"{len(jobs) - finished - started} not started")


def _report_grid(results, args: argparse.Namespace) -> int:
    """The final-regret table of the runs that verified, one line for every other job, and the
    exit status: 0 only if every run finished and verified."""
    import pandas as pd

    from harness.runner import job_summary

    table = pd.DataFrame([job_summary(result) for result in results])
    finished = table[table["status"] == "finished"]
    if len(finished):
        summary = finished.groupby(["problem", "optimizer", "count"])["regret"].agg(
            ["median", "min", "max", "size"]).rename(columns={"size": "seeds"})
        print("final regret (best-so-far, over seeds; count: the rule for repeated queries):")
        print(summary.to_string(float_format=lambda x: f"{x:.4f}"))
    out = Path(args.out)
    for row in table[table["status"] != "finished"].itertuples():
        run = f"{row.optimizer} on {row.problem} seed {row.seed}"
        if row.status == "failed":
            message = f"FAILED {run}: {row.reason}"
        elif row.status == "skipped":
            message = (f"SKIPPED {run}: {row.reason}; run the same command again once it is "
                       "done")
        else:
            aside = f"{out}.rejected"
            message = (f"NOT COUNTED {run}: {row.folder} {row.reason}; to rerun it, move it aside "
                       f"and run again: mkdir -p {shlex.quote(aside)} && mv "
                       f"{shlex.quote(row.folder)} {shlex.quote(aside)}/ && {args.command_line}")
        print(message, file=sys.stderr)
    counts = table["status"].value_counts()
    others = ", ".join(f"{counts[status]} {status}" for status in ("failed", "rejected", "skipped")
                       if status in counts)
    print(f"{len(finished)} of {len(table)} runs finished and verified"
          f"{'; ' + others if others else ''}; run folders under {out} "
          f"(read them with leaderboard.load_runs({str(out)!r}))")
    if len(finished) and not args.no_page:
        page = _write_page(out, args.reference, _archive_option(args), progress=not args.quiet)
        print(f"leaderboard: {page}")
    return 0 if len(finished) == len(table) else 1


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _write_page(out: Path, reference: str, archive: str | None, progress: bool) -> Path:
    """Collect every run under ``out`` into ``out/leaderboard.sqlite`` (verifying each) and write
    the HTML leaderboard of that store, with ``archive``'s records beside them, next to it; returns
    the page's path."""
    from leaderboard.aggregate import summarize_store
    from leaderboard.render import write_leaderboard
    from leaderboard.store import collect, store_with_archive

    db, page = out / "leaderboard.sqlite", out / "leaderboard.html"
    report = collect(out, db, progress=progress)
    for folder, reason in report.rejected.items():
        print(f"REJECTED {folder}: {reason}", file=sys.stderr)
    if progress:
        print(f"writing the leaderboard page from {db} ...", file=sys.stderr, flush=True)
    with store_with_archive(db, archive) as store:
        write_leaderboard(summarize_store(store, reference=reference), html_path=page)
    return page


def _collect(args: argparse.Namespace) -> int:
    from leaderboard.store import collect

    report = collect(args.runs, args.db, progress=None)
    print(f"{_plural(len(report.added), 'run')} added, {len(report.unchanged)} unchanged, "
          f"{_plural(len(report.duplicates), 'duplicate')} of stored runs, "
          f"{len(report.skipped)} unfinished skipped, {len(report.rejected)} rejected; store: "
          f"{args.db}")
    for folder, stored in report.duplicates.items():
        print(f"DUPLICATE {folder}: the same run as {stored}, which the store keeps",
              file=sys.stderr)
    for folder, reason in report.rejected.items():
        print(f"REJECTED {folder}: {reason}", file=sys.stderr)
    return 1 if report.rejected else 0


def _submit(args: argparse.Namespace) -> int:
    from leaderboard.store import collect
    from leaderboard.verify import RunRejected, verify_run

    if not Path(args.run_dir).is_dir():
        raise ValueError(f"run_dir {args.run_dir} is not a folder")
    try:
        manifest = verify_run(args.run_dir).manifest
    except RunRejected as err:
        print(f"REJECTED {args.run_dir}: {err}", file=sys.stderr)
        return 1
    print(f"accepted: {manifest.label} on {manifest.run.problem} seed {manifest.run.seed}, "
          f"{manifest.evaluations} evaluations (count={manifest.run.count}), final regret "
          f"{manifest.regret:.6g}")
    if args.db:
        collect(args.run_dir, args.db)
        print(f"added to {args.db}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from leaderboard.export import export

    report = export(args.runs, args.out, args.format, force=args.force)
    print(f"{_plural(len(report.exported), 'run')} exported to {args.out} ({args.format}), "
          f"{_plural(len(report.duplicates), 'duplicate')}, {len(report.skipped)} unfinished "
          f"skipped, {len(report.rejected)} rejected")
    for folder, reason in report.rejected.items():
        print(f"REJECTED {folder}: {reason}", file=sys.stderr)
    return 1 if report.rejected else 0


def _archive_option(args: argparse.Namespace) -> str | None:
    """The archive a page includes: ``--archive``, else ``results/`` when it is present, unless
    ``--no-archive``."""
    if args.no_archive:
        return None
    if args.archive is None:
        return DEFAULT_ARCHIVE if Path(DEFAULT_ARCHIVE).is_dir() else None
    if not Path(args.archive).exists():
        raise ValueError(f"--archive {args.archive}: no such archive folder")
    return args.archive


def _archive_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", help=f"include this archive's published records comparable "
                        f"with your runs (their instances, budget and counting rule) on the page "
                        f"(default: {DEFAULT_ARCHIVE}/ when it is present)")
    parser.add_argument("--no-archive", action="store_true", help="include no archive")


def _leaderboard(args: argparse.Namespace) -> int:
    from leaderboard.aggregate import summarize_store
    from leaderboard.render import render_markdown, write_leaderboard
    from leaderboard.store import store_with_archive

    with store_with_archive(args.db, _archive_option(args)) as db:
        summary = summarize_store(db, reference=args.reference)
    write_leaderboard(summary, html_path=args.html, markdown_path=args.markdown)
    if not args.html and not args.markdown:
        print(render_markdown(summary))
    for path in filter(None, [args.html, args.markdown]):
        print(f"wrote {path}")
    return 0


def _archive(args: argparse.Namespace) -> int:
    """``archive RUNS --into DIR`` writes records; ``archive check DIR`` checks them; ``archive
    page DIR`` renders the published page and README table from them (``--check``: compares)."""
    if not args.into and args.paths[0] == "check":
        return _archive_check(args)
    if not args.into and args.paths[0] == "page":
        return _archive_page(args)
    from leaderboard.archive import archive

    if len(args.paths) != 1 or not args.into:
        raise ValueError("usage: holo-bench archive RUNS --into DIR, holo-bench archive check "
                         "DIR, or holo-bench archive page DIR [--check]")
    report = archive(args.paths[0], args.into, keep_traces=True if args.keep_traces else None)
    print(f"{_plural(len(report.added), 'record')} added, {len(report.unchanged)} unchanged, "
          f"{_plural(len(report.conflicts), 'conflict')}, {len(report.skipped)} unfinished "
          f"skipped, {len(report.rejected)} rejected; archive: {args.into}")
    for path, folder in report.conflicts.items():
        print(f"CONFLICT {path}: {folder} is the same run with other queries; the archive "
              "keeps its record", file=sys.stderr)
    for folder, reason in report.rejected.items():
        print(f"REJECTED {folder}: {reason}", file=sys.stderr)
    return 1 if report.rejected or report.conflicts else 0


def _archive_page(args: argparse.Namespace) -> int:
    from leaderboard.published import check_published, write_published

    if len(args.paths) != 2:
        raise ValueError("usage: holo-bench archive page DIR [--check]")
    if not args.check:
        for path in write_published(args.paths[1]):
            print(f"wrote {path}")
        return 0
    stale = check_published(args.paths[1])
    for path in stale:
        print(f"STALE {path}: not what {args.paths[1]} renders; run: holo-bench archive page "
              f"{args.paths[1]}", file=sys.stderr)
    if not stale:
        print(f"the published page and README table are what {args.paths[1]} renders")
    return 1 if stale else 0


def _archive_check(args: argparse.Namespace) -> int:
    import random

    from leaderboard.archive import RecordError, find_records, read_record, rescore

    if len(args.paths) != 2:
        raise ValueError("usage: holo-bench archive check DIR")
    paths = find_records(args.paths[1])
    if not paths:
        raise ValueError(f"{args.paths[1]} holds no archive records (*.json)")
    failed, cheap, rescored = [], [], 0
    for path in paths:
        try:
            record, manifest = read_record(path)
            if "trace" in record:
                rescore(record, path)
                rescored += 1
        except RecordError as err:
            failed.append(str(err))
            continue
        if "trace" not in record and manifest.seconds <= args.max_seconds:
            cheap.append(path)  # a record with its trace was rescored: no rerun needed
    sample = random.Random(args.seed).sample(cheap, min(args.sample, len(cheap)))
    print(f"{_plural(len(paths), 'record')} read, {len(paths) - len(failed)} well formed "
          f"({rescored} of them rescored from their traces); "
          f"reproducing {_plural(len(sample), 'record')} of the {len(cheap)} whose run took at "
          f"most {args.max_seconds:g} s (sample seed {args.seed})")
    failed += _reproduce_each(sample, args.workers)
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


def _reproduce_each(paths, workers: int | None = None) -> list[str]:
    """Rerun each record; print a line per record reproduced; return the failures' lines."""
    import tempfile

    from harness.reproduce import reproduce

    with tempfile.TemporaryDirectory() as scratch:
        reproduced, failed = reproduce(paths, scratch, workers=workers)
    for line in reproduced:
        print(f"REPRODUCED {line}")
    return failed


def _reproduce(args: argparse.Namespace) -> int:
    from leaderboard.archive import RecordError, read_record

    paths = []
    for path in args.records:
        try:
            record, manifest = read_record(path)
        except RecordError:
            paths.append(path)  # reproduce names the problem
            continue
        if args.max_seconds is not None and manifest.seconds > args.max_seconds:
            print(f"NOT RERUN {path}: its run took {manifest.seconds:.0f} s, over --max-seconds "
                  f"{args.max_seconds:g}")
        elif args.max_seconds is not None and "trace" in record:
            print(f"NOT RERUN {path}: it carries its trace, which archive check rescores")
        else:
            paths.append(path)
    failed = _reproduce_each(paths, args.workers)
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


def _regress(args: argparse.Namespace) -> int:
    import tempfile

    from harness.regression import regress, suite_definition

    overrides = _split_params(args.set, suite_definition(args.suite)["optimizers"])
    with tempfile.TemporaryDirectory() as scratch:
        passed, lines = regress(args.suite, args.baseline, out=args.out or scratch,
                                update=args.update_baseline, overrides=overrides,
                                statistical=args.statistical, alpha=args.alpha,
                                workers=args.workers)
    for line in lines:
        print(line if passed else f"REGRESSION {line}")
    if passed and not args.update_baseline:
        print(f"suite {args.suite}: no regression against {args.baseline}")
    return 0 if passed else 1


class OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line naming the argument (``--help`` shows the usage), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"holo-bench: error: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(prog="holo-bench", description="Benchmark optimizers of biological "
                           "sequences on Ehrlich functions: run grids, verify and store their "
                           "runs, and write the leaderboard.")
    commands = parser.add_subparsers(dest="command", required=True)
    lister = commands.add_parser(
        "list", help="list the named suites, instances and families, and the optimizers")
    lister.add_argument("what", nargs="?", choices=["problems", "optimizers"],
                        help="only the problems, or only the optimizers (default: both)")
    lister.set_defaults(func=_list)

    run = commands.add_parser(
        "run",
        help="run every (optimizer, problem, seed) job; with no arguments, the default benchmark"
    )
    run.add_argument("--optimizer", action="append",
                     help=f"registered name (holo-bench list optimizers), ng:NAME (nevergrad) "
                          f"or module:Class, repeatable "
                          f"(default: {' '.join(DEFAULT_OPTIMIZERS)})")
    run.add_argument("--problem", action="append",
                     help="instance, family, suite or spec string, repeatable (default: the "
                          "track's problems)")
    run.add_argument("--track", help=f"run a named track (holo-bench list problems): its "
                     f"problems, budget, counting rule and seeds (default: {DEFAULT_TRACK}, "
                     f"unless --problem is given)")
    run.add_argument("--seeds", type=parse_seeds,
                     help=f"e.g. 0-4 (default: the track's, or {DEFAULT_SEEDS} without one)")
    run.add_argument("--budget", type=positive_int,
                     help=f"charged oracle evaluations per run (default {DEFAULT_BUDGET}, or the "
                          "track's)")
    run.add_argument("--count", choices=["distinct", "all"],
                     help="rule for repeated queries: 'distinct' answers a sequence already "
                          "evaluated in the run for free, 'all' charges every query (default: "
                          "distinct, or all on a noisy problem)")
    run.add_argument("--out", default=DEFAULT_OUT,
                     help=f"folder for run folders (default {DEFAULT_OUT}/)")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="optimizer parameter; OPTIMIZER.NAME=VALUE for one optimizer")
    run.add_argument("--backend", choices=["hf", "vllm"],
                     help="generation backend of the optimizers that have one (LLOME): "
                          "transformers or vLLM")
    run.add_argument("--label", help="name the runs of a single optimizer (e.g. a configuration)")
    run.add_argument("--executor", choices=["local", "ray"], default="local")
    run.add_argument("--workers", type=positive_int, help="parallel jobs (default: one per core)")
    run.add_argument("--ray-address",
                     help="connect to this Ray cluster (default: start a local one)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--no-page", action="store_true",
                     help="skip the leaderboard page (by default, every run under --out is "
                          "collected into OUT/leaderboard.sqlite and OUT/leaderboard.html written)")
    run.add_argument("--reference", default="ga",
                     help="the entry the page's verdicts test against, per problem (default: ga)")
    _archive_arguments(run)
    run.set_defaults(func=_run)

    collect = commands.add_parser(
        "collect", help="verify run folders and index them into the results store")
    collect.add_argument("runs", help="folder of run folders")
    collect.add_argument("--db", default="leaderboard.sqlite",
                         help="SQLite store (default leaderboard.sqlite)")
    collect.set_defaults(func=_collect)

    submit = commands.add_parser(
        "submit", help="verify a run folder made elsewhere (and add it to a store)")
    submit.add_argument("run_dir")
    submit.add_argument("--db", help="also add the run to this store")
    submit.set_defaults(func=_submit)

    board = commands.add_parser("leaderboard", help="write the leaderboard from the results store")
    board.add_argument("--db", default="leaderboard.sqlite")
    board.add_argument("--html", help="self-contained HTML page to write, e.g. site/index.html")
    board.add_argument("--markdown", help="markdown table to write, e.g. site/leaderboard.md")
    board.add_argument("--reference", default="ga",
                       help="the entry every other is tested against, per problem (default: ga)")
    _archive_arguments(board)
    board.set_defaults(func=_leaderboard)

    archiver = commands.add_parser(
        "archive", help="write verified runs as archive records (archive RUNS --into DIR), "
        "check an archive (archive check DIR), or render its published page and README table "
        "(archive page DIR [--check])")
    archiver.add_argument("paths", nargs="+", metavar="RUNS | check DIR | page DIR")
    archiver.add_argument("--into", help="the archive folder to write records into")
    archiver.add_argument("--keep-traces", action="store_true",
                          help="every record carries its packed trace (default: those of runs "
                               "longer than a minute)")
    archiver.add_argument("--sample", type=int, default=5,
                          help="check: records to rerun and compare (default 5)")
    archiver.add_argument("--seed", type=int, default=0,
                          help="check: seed of the sample of records to rerun (default 0)")
    archiver.add_argument("--max-seconds", type=float, default=60.0,
                          help="check: sample only records without a trace whose run took at "
                               "most this long (default 60)")
    archiver.add_argument("--workers", type=positive_int,
                          help="check: parallel reruns (default: one per core)")
    archiver.add_argument("--check", action="store_true",
                          help="page: compare the committed files with what the archive renders")
    archiver.set_defaults(func=_archive)

    reproducer = commands.add_parser(
        "reproduce", help="rerun archive records from their identity and compare the queries")
    reproducer.add_argument("records", nargs="+", metavar="RECORD")
    reproducer.add_argument("--workers", type=positive_int,
                            help="parallel reruns (default: one per core)")
    reproducer.add_argument("--max-seconds", type=float,
                            help="rerun only records whose run took at most this long and "
                                 "that carry no trace (archive check rescores those)")
    reproducer.set_defaults(func=_reproduce)

    exporter = commands.add_parser(
        "export", help="write verified runs as CSV (every query) or in IOHprofiler's format "
        "(for IOHanalyzer; needs the `ioh` extra)")
    exporter.add_argument("runs", help="folder of run folders")
    exporter.add_argument("--format", choices=["csv", "ioh"], required=True)
    exporter.add_argument("--out", required=True,
                          help="the CSV file to write, or a new folder for the IOH format")
    exporter.add_argument("--force", action="store_true",
                          help="overwrite an existing CSV file")
    exporter.set_defaults(func=_export)

    gate = commands.add_parser(
        "regress", help="rerun a seeded regression suite and compare with its baseline")
    gate.add_argument("--suite", default="ci")
    gate.add_argument("--baseline", default="benchmarks/baselines/ci.json")
    gate.add_argument("--update-baseline", action="store_true",
                      help="accept this run as the new baseline")
    gate.add_argument("--set", action="append", default=[], metavar="OPTIMIZER.NAME=VALUE",
                      help="change an optimizer's parameter for this run only (to test a change)")
    gate.add_argument("--statistical", action="store_true",
                      help="compare every optimizer with the one-sided test, even deterministic "
                           "ones")
    gate.add_argument("--alpha", type=float, default=0.01,
                      help="level of the one-sided test (default 0.01)")
    gate.add_argument("--out", help="keep the run folders here (default: a temporary folder)")
    gate.add_argument("--workers", type=positive_int)
    gate.set_defaults(func=_regress)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["holo-bench", *argv])
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (``holo-bench list | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except ValueError as err:  # bad names, specs, parameters, folders or stores: one line
        print(f"holo-bench: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
