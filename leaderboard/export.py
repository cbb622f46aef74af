"""Verified runs in formats other tools read: one CSV of every query, or IOHprofiler's format.

Only runs that pass ``leaderboard.verify`` are exported (the same checks as ``collect``), each run
identity once. Both formats name entries and problems as the leaderboard does
(``aggregate.entry_names``, ``aggregate.problem_labels``), so an export and the page agree.

IOHprofiler's format (what IOHanalyzer loads) is written by the ``ioh`` package's own ``Analyzer``
logger, by replaying each run's charged evaluations, in order, through an ``ioh`` integer problem
whose answers are the trace's values: per entry a folder holding, per problem, a JSON file of
meta-data (function, maximization, algorithm, per run its instance, evaluations and best point)
and a ``.dat`` file with one block per run of ``evaluations raw_y`` lines, written at every strict
improvement. There, a problem is the family (IOH's function) and the instance is the instance
seed (IOH's instance id), which is what IOH's own function/instance split means. Free repeats are
not replayed (they cost nothing), so IOH's evaluation count is the run's charged count. An
infeasible query is written as the problem's ``worst_value`` (0 for Ehrlich), which is what it
counts as in regret; ``ioh`` drops a run whose answers are all ``-inf``, and no run may be lost.
``ioh`` writes names into its JSON unescaped, so in this format a name's double quotes become
single quotes, backslashes slashes and control characters spaces.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from holo_bench.record import find_runs, read_manifest, run_folder
from holo_bench.suite import make_function
from leaderboard.aggregate import entry_names, problem_labels
from leaderboard.runs import query_frame
from leaderboard.verify import RunRejected, VerifiedRun, verify_run

FORMATS = ("csv", "ioh")
IOH_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class ExportReport:
    """What one ``export`` did: run identities exported, folders skipped, rejected (with why), or
    holding a run already exported (-> the exported run's folder)."""

    exported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unfinished runs
    rejected: dict[str, str] = field(default_factory=dict)
    duplicates: dict[str, str] = field(default_factory=dict)


def _check_target(out: Path, format: str, force: bool) -> None:
    if format == "csv" and out.is_dir():
        raise ValueError(f"--out {out} is a folder; the CSV export writes one file, e.g. "
                         f"{out / 'runs.csv'}")
    if format == "csv" and out.exists() and not force:
        raise ValueError(f"--out {out} exists; give a new file, or --force to overwrite it")
    if format == "ioh" and out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; the IOH export writes a folder")
    if format == "ioh" and out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} exists and is not empty; give a new folder for the IOH "
                         "export")


def export(root: str | os.PathLike, out: str | os.PathLike, format: str,
           force: bool = False) -> ExportReport:
    """Verify every run folder under ``root`` and write the accepted runs to ``out``: a CSV file
    (``format="csv"``; an existing one only with ``force``) or a new or empty folder in
    IOHprofiler's format (``format="ioh"``). The target is checked before any run is verified."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder of run folders")
    _check_target(out, format, force)
    report = ExportReport()
    runs: dict[str, tuple[Path, VerifiedRun]] = {}
    for folder in find_runs(root):
        try:
            manifest = read_manifest(folder)
            if manifest is not None and manifest.status != "finished":
                report.skipped.append(str(folder))
                continue
            verified = verify_run(folder)
        except (RunRejected, ValueError) as err:
            report.rejected[str(folder)] = str(err)
            continue
        identity = verified.manifest.identity
        if identity in runs:
            report.duplicates[str(folder)] = str(runs[identity][0])
            continue
        runs[identity] = (folder, verified)
    if not runs:
        raise ValueError(f"{root} holds no verified finished runs to export")
    verified_runs = [run for _, run in runs.values()]
    entries = _entry_names(verified_runs)
    problems = problem_labels({run.manifest.run.problem: run.manifest.run.spec
                               for run in verified_runs})
    (_write_csv if format == "csv" else _write_ioh)(verified_runs, entries, problems, out)
    report.exported = list(runs)
    return report


def _entry_names(runs: list[VerifiedRun]) -> dict[str, str]:
    """Run identity -> its entry's name on the leaderboard."""
    frame = pd.DataFrame([{"optimizer": run.manifest.label, "config": spec.configuration,
                           "optimizer_name": spec.optimizer, "budget": spec.budget,
                           "count": spec.count, "params": json.dumps(spec.params, sort_keys=True)}
                          for run in runs for spec in [run.manifest.run]])
    names = entry_names(frame)
    return {run.manifest.identity: names[(run.manifest.label, run.manifest.run.configuration)]
            for run in runs}


def _write_csv(runs, entries, problems, out: Path) -> None:
    """One row per query: the entry and family names, the instance's spec and the configuration
    hash, then ``load_runs``' columns, then the sequence as space-separated states."""
    frames = []
    for run in runs:
        manifest, spec = run.manifest, run.manifest.run.spec
        frame = query_frame(manifest, run.records)
        frame.insert(0, "entry", entries[manifest.identity])
        frame.insert(1, "family", problems[manifest.run.problem])
        frame.insert(2, "spec", spec)
        frame.insert(3, "config", manifest.run.configuration)
        frame["sequence"] = [" ".join(map(str, row)) for row in run.records["sequence"].tolist()]
        frames.append(frame)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(frames, ignore_index=True).to_csv(out, index=False)


def _ioh_text(name: str) -> str:
    """``name`` as ``ioh`` can write it into its JSON, which it does not escape."""
    return IOH_UNSAFE.sub(" ", name.replace('"', "'").replace("\\", "/"))


def _write_ioh(runs, entries, problems, out: Path) -> None:
    import ioh  # the optional extra `ioh`: scripts/install.sh installs it

    out.mkdir(parents=True, exist_ok=True)
    answers: dict = {}  # the replayed run's values, read by the wrapped problem in call order

    @cache
    def problem(family: str, spec: str):
        function = make_function(spec)
        return ioh.wrap_problem(
            lambda x: next(answers["values"]), name=_ioh_text(family),
            problem_class=ioh.ProblemClass.INTEGER, dimension=function.dim,
            instance=function.random_seed, optimization_type=ioh.OptimizationType.MAX,
            lb=0, ub=function.num_states - 1,
            calculate_objective=lambda *_: (function.optimal_solution(), function.optimal_value))

    by_entry: dict[str, list[VerifiedRun]] = {}
    for run in runs:
        by_entry.setdefault(entries[run.manifest.identity], []).append(run)
    for entry, entry_runs in sorted(by_entry.items()):
        run = entry_runs[0].manifest.run
        logger = ioh.logger.Analyzer(
            triggers=[ioh.logger.trigger.ON_IMPROVEMENT], root=str(out),
            # the entry's folder named as the runner names a label's
            folder_name=run_folder("", entry, run).parts[0], algorithm_name=_ioh_text(entry),
            algorithm_info=_ioh_text(f"{run.optimizer} budget={run.budget} count={run.count} "
                                + " ".join(f"{k}={v}" for k, v in sorted(run.params.items()))))
        order = sorted(entry_runs, key=lambda r: (problems[r.manifest.run.problem],
                                                   r.manifest.run.spec, r.manifest.run.seed))
        for verified in order:
            manifest, records = verified.manifest, verified.records
            charged = records[records["charged"]]
            values = np.where(charged["feasible"], charged["value"], manifest.problem.worst_value)
            target = problem(problems[manifest.run.problem], manifest.run.spec)
            target.attach_logger(logger)
            answers["values"] = iter(values.tolist())
            for sequence in charged["sequence"]:
                target(sequence.astype(np.int64))
            target.reset()
            target.detach_logger()
        logger.close()
