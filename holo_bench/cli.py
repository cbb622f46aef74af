"""The ``holo-bench`` command line."""

from __future__ import annotations

import argparse
import sys

from holo_bench import suite

# The main job: what `holo-bench run` does with no arguments.
DEFAULT_OPTIMIZERS = ["ga", "random"]
DEFAULT_PROBLEMS = ["f2", "ehr_v-32_l-128_m-4_c-4_q-4"]
DEFAULT_SEEDS = "0-4"
DEFAULT_BUDGET = 100_000
DEFAULT_OUT = "runs"


def _list(args: argparse.Namespace) -> int:
    print("suites:")
    for name, members in suite.suites().items():
        print(f"  {name}: {', '.join(members)}")
    print("instances:")
    for name, entry in suite.instances().items():
        print(f"  {name:28s} {entry['spec']:45s} {entry.get('about', '')}")
    return 0


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"1,5,7"`` and mixtures like ``"0-2,9"`` also work."""
    seeds = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            seeds.extend(range(int(low), int(high) + 1) if dash else [int(low)])
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad seed list {text!r}; use e.g. 0-4 or 1,3,5") from None
    return seeds


def _split_params(assignments: list[str], optimizers: list[str]) -> dict[str, dict]:
    """``--set`` values per optimizer: ``name=value`` for all, ``ga.name=value`` for one."""
    from optimizers.registry import parse_params

    params: dict[str, dict] = {name: {} for name in optimizers}
    for assignment in assignments:
        key = assignment.partition("=")[0]
        scope, dot, _ = key.partition(".")
        targets = [scope] if dot and scope in params else optimizers
        bare = assignment[len(scope) + 1:] if dot and scope in params else assignment
        for name in targets:
            params[name].update(parse_params([bare]))
    return params


def _run(args: argparse.Namespace) -> int:
    import pandas as pd

    from holo_bench.executors import run_grid
    from holo_bench.runner import Job, job_summary
    from optimizers.registry import optimizer_class

    optimizers = args.optimizer or DEFAULT_OPTIMIZERS
    problems = suite.resolve_problems(args.problem or DEFAULT_PROBLEMS)
    for name in optimizers:  # fail before any run starts
        optimizer_class(name)
    for problem in problems:
        suite.make_function(problem)
    params = _split_params(args.set, optimizers)
    jobs = [
        Job(optimizer=name, problem=problem, seed=seed, budget=args.budget, out=args.out,
            params=params[name], label=args.label if args.label and len(optimizers) == 1 else "")
        for name in optimizers for problem in problems for seed in args.seeds
    ]
    manifests = run_grid(jobs, executor=args.executor, workers=args.workers,
                         ray_address=args.ray_address, progress=not args.quiet)
    table = pd.DataFrame([job_summary(m) for m in manifests])
    failed = table[table["status"] != "finished"]
    finished = table[table["status"] == "finished"]
    if len(finished):
        summary = finished.groupby(["problem", "optimizer"])["regret"].agg(["median", "min", "max", "count"])
        print("final regret (best-so-far, over seeds):")
        print(summary.to_string(float_format=lambda x: f"{x:.4f}"))
    for row in failed.itertuples():
        print(f"FAILED {row.optimizer} on {row.problem} seed {row.seed}: {row.error}", file=sys.stderr)
    print(f"{len(finished)} of {len(table)} runs finished; run folders under {args.out}/ "
          f"(read them with leaderboard.load_runs({args.out!r}))")
    return 1 if len(failed) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="holo-bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the named suites and instances").set_defaults(func=_list)

    run = commands.add_parser(
        "run", help="run every (optimizer, problem, seed) job; with no arguments, the default benchmark"
    )
    run.add_argument("--optimizer", action="append", help=f"registered name or module:Class, repeatable (default: {' '.join(DEFAULT_OPTIMIZERS)})")
    run.add_argument("--problem", action="append", help=f"instance, suite or spec string, repeatable (default: {' '.join(DEFAULT_PROBLEMS)})")
    run.add_argument("--seeds", type=parse_seeds, default=parse_seeds(DEFAULT_SEEDS), help=f"e.g. 0-4 (default {DEFAULT_SEEDS})")
    run.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help=f"oracle evaluations per run (default {DEFAULT_BUDGET})")
    run.add_argument("--out", default=DEFAULT_OUT, help=f"folder for run folders (default {DEFAULT_OUT}/)")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="optimizer parameter; OPTIMIZER.NAME=VALUE for one optimizer")
    run.add_argument("--label", help="name the runs of a single optimizer (e.g. a configuration)")
    run.add_argument("--executor", choices=["local", "ray"], default="local")
    run.add_argument("--workers", type=int, help="parallel jobs (default: one per core)")
    run.add_argument("--ray-address", help="connect to this Ray cluster (default: start a local one)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # bad names, specs or parameters: a message, not a traceback
        print(f"holo-bench: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
