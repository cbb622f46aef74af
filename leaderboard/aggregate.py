"""From the store to the numbers a leaderboard shows; tables and plots both come from here.

An entry is one optimizer configuration (``holo_bench.record.RunSpec.configuration``: optimizer,
parameters, budget, counting rule) under its label; when one label covers several configurations,
each entry's name adds what sets it apart, e.g. ``ga [budget=2000]``. Per (problem, entry), over
seeds: the final best-so-far regret (median and interquartile range), the median evaluations to
solve (infinite when the median run did not solve), the fraction of seeds solved, and the normalized
area under the regret curve on a log axis (``AUC = integral of regret d(log10 e) / log10(budget)``
from 1 to the budget: 0 for solving at once, 1 for never leaving the start). Curves give the median
and quartiles of the regret across seeds at each grid point. The fixed-target ECDF (as in COCO)
gives, per optimizer and across all problems, the fraction of (problem, seed, target) triples whose
target value was reached within ``e`` evaluations. Per (problem, entry, target), the fixed-target
table gives the target as a regret (the optimal value minus the target value), the success rate
and the expected running time (ERT: the charged evaluations of every run until it reached the
target, or all it was charged if it never did, summed and divided by the number of runs that
reached it; infinite when none did), as in COCO and IOHanalyzer.

Each row also holds its verdicts against a reference optimizer (``ga`` unless told otherwise) on
the same problem, on final regret and on AUC (``leaderboard.stats``: one-sided Mann-Whitney U
tests, Holm-adjusted over every p-value of the table), and 95% bootstrap intervals of the median
final regret and of the mean AUC.

A problem on the leaderboard is a family (``holo_bench.suite.family_spec``): every instance with
the same parameters, whatever its seed, and every run on them are pooled, and the table shows how
many instances and runs each row holds. A family with one instance keeps its problem's name; one
with several takes its name in ``suites.toml`` (or its spec without the seed). An entry is tested
against the reference only where both ran on the same instances, so that a pooled comparison is
not a comparison of instances.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from holo_bench.measures import evaluation_grid
from holo_bench.record import Manifest
from holo_bench.suite import families, family_spec
from leaderboard import stats
from leaderboard.store import read_store

# Per-round diagnostics shown for optimizers that report them (LLOME), median over seeds, with
# their column titles.
ROUND_METRICS = {"parse_rate": "parse rate", "feasible_rate": "feasible",
                 "edit_distance": "edit distance", "diversity": "diversity",
                 "calibration_spearman": "calibration (Spearman)",
                 "ranking_accuracy": "ranking accuracy",
                 "train_reward_share": "reward share of the gradient", "train_ess": "ESS",
                 "best_value": "best value", "train_seconds": "training s",
                 "generate_seconds": "generation s"}


@dataclass
class Summary:
    table: pd.DataFrame
    curves: pd.DataFrame
    ecdf: pd.DataFrame
    generated: str
    reference: str = "ga"  # the entry every other is tested against, per problem
    # problem (its label on the page), family (spec without seed), about (its instances in words)
    problems: pd.DataFrame = field(default_factory=pd.DataFrame)
    # problem, optimizer, target (a value), target_regret, runs, successes, success_rate, ert
    fixed_target: pd.DataFrame = field(default_factory=pd.DataFrame)
    # per entry: problems, normalized score and its interval, average rank (see ``_across``)
    across: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the ranking's test: problems and entries ranked, Friedman's p, Nemenyi's critical difference
    ranking: dict = field(default_factory=dict)
    rounds: pd.DataFrame = field(default_factory=pd.DataFrame)  # problem, optimizer, round, metrics
    # One row per entry: its name, the registered optimizer, parameters, budget and counting rule.
    configurations: pd.DataFrame = field(default_factory=pd.DataFrame)


def _auc(evaluations: np.ndarray, regret: np.ndarray) -> float:
    """Normalized area under a regret curve against log10(evaluations), by the trapezoid rule
    (written out: ``np.trapezoid`` is numpy 2 only, ``np.trapz`` gone from it)."""
    if len(evaluations) < 2:
        return float(regret[0]) if len(regret) else float("nan")
    x = np.log10(evaluations)
    area = np.sum(np.diff(x) * (regret[1:] + regret[:-1]) / 2)
    return float(area / (x[-1] - x[0]))


def entry_names(runs: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(label, config) -> the entry's display name: the label, plus what differs between its
    configurations when it has several."""
    names = {}
    for label, group in runs.drop_duplicates(["optimizer", "config"]).groupby("optimizer",
                                                                            sort=True):
        if len(group) == 1:
            names[(label, group["config"].iloc[0])] = label
            continue
        described = [{"optimizer": row.optimizer_name, "budget": row.budget, "count": row.count,
                      **json.loads(row.params)} for row in group.itertuples()]
        differ = [key for key in described[0]
                  if len({json.dumps(d.get(key)) for d in described}) > 1]
        for row, config in zip(group.itertuples(), described):
            detail = ", ".join(f"{key}={config.get(key)}" for key in differ) or row.config[:8]
            names[(label, row.config)] = f"{label} [{detail}]"
    return names


def _name_entries(frame: pd.DataFrame, names: dict) -> pd.DataFrame:
    if frame.empty:
        return frame
    named = [names[key] for key in zip(frame["optimizer"], frame["config"])]
    return frame.assign(optimizer=named).drop(columns="config")


def problem_labels(specs: dict[str, str]) -> dict[str, str]:
    """Problem name -> the name of its family on the leaderboard (see the module docstring), for
    the problems ``specs`` maps to their instances' spec strings."""
    named = {family_spec(f"{family['spec']},seed={family['seeds'][0]}"): name
             for name, family in families().items()}
    by_family: dict[str, dict[str, list[str]]] = {}
    for problem, spec in specs.items():
        by_family.setdefault(family_spec(spec), {}).setdefault(spec, []).append(problem)
    labels = {}
    for family, instances in by_family.items():
        problems = [problem for names in instances.values() for problem in names]
        label = min(problems) if len(instances) == 1 else named.get(family, family)
        labels.update(dict.fromkeys(problems, label))
    return labels


def _pool_families(runs, curves, targets, rounds):
    """The frames with each problem replaced by its family's label and an ``instance`` column
    (the instance's spec), and the families described."""
    spec_of = dict(zip(runs["problem"], runs["spec"]))
    labels = problem_labels(spec_of)

    def pooled(frame):
        if frame is None or frame.empty:
            return frame
        return frame.assign(instance=frame["problem"].map(spec_of),
                            problem=frame["problem"].map(labels))

    runs = pooled(runs)
    rows = []
    for label, group in runs.groupby("problem", sort=True):
        instances = sorted(set(group["instance"]))
        family = family_spec(instances[0])
        seeds = ", ".join(sorted((spec.rpartition("seed=")[2] for spec in instances), key=int))
        rows.append({"problem": label, "family": family,
                     "about": instances[0] if len(instances) == 1 else
                     f"{len(instances)} instances of {family}, instance seeds {seeds}"})
    problems = pd.DataFrame(rows, columns=["problem", "family", "about"])
    return (runs, *(pooled(frame) for frame in (curves, targets, rounds)), problems)


def summarize(runs: pd.DataFrame, curves: pd.DataFrame, targets: pd.DataFrame,
              rounds: pd.DataFrame | None = None, reference: str = "ga") -> Summary:
    """Aggregate the store's frames (see ``leaderboard.store.read_store``); ``reference`` names
    the entry the verdicts compare with."""
    # a target is stored as a value; the page speaks of regret, the run's optimal value minus it
    optimal = {row.problem: Manifest.from_json(json.loads(row.manifest)).problem.optimal_value
               for row in runs.drop_duplicates("problem").itertuples()}
    targets = targets.assign(target_regret=targets["problem"].map(optimal) - targets["target"])
    runs, curves, targets, rounds, problems = _pool_families(runs, curves, targets, rounds)
    names = entry_names(runs)
    configurations = pd.DataFrame(
        [{"entry": names[(row.optimizer, row.config)], "optimizer": row.optimizer_name,
          "params": row.params, "budget": int(row.budget), "count": row.count}
         for row in runs.drop_duplicates(["optimizer", "config"]).itertuples()],
        columns=["entry", "optimizer", "params", "budget", "count"]).sort_values("entry")
    runs, curves, targets = (_name_entries(frame, names) for frame in (runs, curves, targets))
    rounds = _name_entries(rounds, names) if rounds is not None else None
    auc = {
        key: _auc(group["evaluations"].to_numpy(), group["regret"].to_numpy())
        for key, group in curves.groupby(["problem", "optimizer", "instance", "seed"])
    }
    runs = runs.assign(
        auc=[auc[key] for key in zip(runs["problem"], runs["optimizer"], runs["instance"],
                                     runs["seed"])],
        to_solve=runs["evals_to_solve"].astype(float).fillna(np.inf),
    )
    rows = []
    for (problem, optimizer), group in runs.groupby(["problem", "optimizer"], sort=True):
        final = group["final_regret"].to_numpy()
        regret_low, regret_high = stats.bootstrap_interval(final, np.median)
        auc_low, auc_high = stats.bootstrap_interval(group["auc"].to_numpy(), np.mean)
        rows.append({
            "problem": problem, "optimizer": optimizer,
            "instances": group["instance"].nunique(), "seeds": len(group),
            "budget": int(group["budget"].max()), "count": group["count"].iloc[0],
            "median_regret": float(np.median(final)),
            "q25_regret": float(np.percentile(final, 25)),
            "q75_regret": float(np.percentile(final, 75)),
            "median_evals_to_solve": float(np.median(group["to_solve"])),
            "fraction_solved": float(np.isfinite(group["to_solve"]).mean()),
            "auc": float(group["auc"].mean()),
            "regret_ci_low": regret_low, "regret_ci_high": regret_high,
            "auc_ci_low": auc_low, "auc_ci_high": auc_high,
            # from the traces at collect time, never from what the optimizer reported
            **{column: float(group[column].median()) for column in VERIFIED},
            "median_seconds": float(group["seconds"].median()),
            "hardware": "; ".join(sorted({_hardware_text(h) for h in group["hardware"]})),
        })
    table = pd.DataFrame(rows, columns=["problem", "optimizer", "instances", "seeds", "budget",
                                        "count",
                                        "median_regret", "q25_regret", "q75_regret",
                                        "median_evals_to_solve", "fraction_solved", "auc",
                                        "regret_ci_low", "regret_ci_high", "auc_ci_low",
                                        "auc_ci_high", *VERIFIED, "median_seconds",
                                        "hardware"])
    table = _verdicts(table, runs, reference)
    across, ranking = _across(table, runs)
    quantiles = curves.groupby(["problem", "optimizer", "evaluations"])["regret"]
    curve_table = pd.DataFrame({
        "median": quantiles.median(), "q25": quantiles.quantile(0.25),
        "q75": quantiles.quantile(0.75),
    }).reset_index()
    return Summary(table=table, curves=curve_table, ecdf=_ecdf(targets),
                   generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                   reference=reference, problems=problems,
                   fixed_target=_fixed_target(targets), across=across,
                   ranking=ranking,
                   rounds=_rounds(rounds), configurations=configurations)


NORMALIZER = "random"  # the entry whose median final regret is 1 on the normalized scale


def _across(table: pd.DataFrame, runs: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Across problems, per entry: the normalized score (its median final regret over random
    search's on the same problem, so 0 is the optimum and 1 random search, as Bayesmark does;
    undefined where random search has no runs or solved the problem at the median), its mean
    over the problems where it is defined with a bootstrap interval that resamples each
    problem's seeds (random search's median held fixed; each entry's draws from its own
    generator, so adding an entry leaves the others' intervals as they were), and the average
    rank of the entries run on every problem, with Friedman's test and Nemenyi's critical
    difference."""
    finals = {key: group["final_regret"].to_numpy(dtype=float)
              for key, group in runs.groupby(["problem", "optimizer"])}
    median = table.set_index(["problem", "optimizer"])["median_regret"]
    normalizer = {problem: median[(problem, NORMALIZER)] for problem in table["problem"].unique()
                  if (problem, NORMALIZER) in median.index and median[(problem, NORMALIZER)] > 0}
    rows = []
    for entry, group in table.groupby("optimizer", sort=True):
        scored = [problem for problem in group["problem"] if problem in normalizer]
        row = {"optimizer": entry, "problems": len(group), "scored_problems": len(scored),
               "runs": int(group["seeds"].sum()), "normalized_score": np.nan,
               "score_ci_low": np.nan, "score_ci_high": np.nan}
        if scored:
            rng = np.random.default_rng(seed)
            row["normalized_score"] = float(np.mean([median[(problem, entry)] / normalizer[problem]
                                                     for problem in scored]))
            draws = np.mean([np.median(rng.choice(finals[(problem, entry)],
                                                  (stats.RESAMPLES, len(finals[(problem, entry)]))),
                                       axis=1) / normalizer[problem] for problem in scored], axis=0)
            row["score_ci_low"], row["score_ci_high"] = np.quantile(draws, [0.025, 0.975])
        rows.append(row)
    across = pd.DataFrame(rows, columns=["optimizer", "problems", "scored_problems", "runs",
                                         "normalized_score", "score_ci_low", "score_ci_high"])
    problems = sorted(table["problem"].unique())
    ranked = [entry for entry, group in table.groupby("optimizer", sort=True)
              if set(group["problem"]) == set(problems)]
    scores = np.array([[median[(problem, entry)] for entry in ranked] for problem in problems])
    ranks = dict(zip(ranked, stats.average_ranks(scores))) if len(ranked) and problems else {}
    across["average_rank"] = [ranks.get(entry, np.nan) for entry in across["optimizer"]]
    ranking = {"problems": len(problems), "entries": len(ranked),
               "friedman_p": stats.friedman_p(scores) if len(ranked) else float("nan"),
               "critical_difference": (stats.nemenyi_critical_difference(len(ranked),
                                                                         len(problems))
                                       if len(ranked) >= 2 else float("nan"))}
    return across, ranking


def _fixed_target(targets: pd.DataFrame) -> pd.DataFrame:
    """Success rate and ERT per (problem, entry, target); see the module docstring."""
    columns = ["problem", "optimizer", "target", "target_regret", "runs", "successes",
               "success_rate", "ert"]
    rows = []
    for (problem, optimizer, target, target_regret), group in targets.groupby(
            ["problem", "optimizer", "target", "target_regret"], sort=True):
        hit = group["evaluations"].astype(float).to_numpy()
        reached = np.isfinite(hit)
        spent = np.where(reached, hit, group["used"].to_numpy(dtype=float)).sum()
        successes = int(reached.sum())
        rows.append({"problem": problem, "optimizer": optimizer, "target": float(target),
                     "target_regret": float(target_regret), "runs": len(group),
                     "successes": successes, "success_rate": successes / len(group),
                     "ert": spent / successes if successes else np.inf})
    return pd.DataFrame(rows, columns=columns)


VERDICT_METRICS = {"regret": "final_regret", "auc": "auc"}
# Measures of each run's queries, computed from its trace when it was collected (medians shown).
VERIFIED = ("feasible_fraction", "distinct_fraction", "diversity")


def _hardware_text(hardware: str) -> str:
    """A manifest's hardware record in a few words: CPUs, torch threads, GPU."""
    record = json.loads(hardware)
    words = [f"{record.get('cpus')} CPUs"]
    threads = record.get("torch_threads")
    if threads is not None:
        words.append(f"{threads} torch thread{'' if threads == 1 else 's'}")
    if record.get("gpu"):
        words.append(str(record["gpu"]))
    return ", ".join(words)


def _verdicts(table: pd.DataFrame, runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Add, per row and metric, Holm-adjusted p-values of "lower than the reference" and "higher
    than the reference" (NaN for the reference itself and where it has no runs on the same
    instances) and the verdict: better, worse, no evidence, reference, or "" (nothing to compare
    with)."""
    by_entry = {key: group for key, group in runs.groupby(["problem", "optimizer"])}
    raw = {f"p_{metric}_{side}": [] for metric in VERDICT_METRICS for side in ("lower", "higher")}
    comparable = []
    for row in table.itertuples():
        base = by_entry.get((row.problem, reference))
        mine = by_entry[(row.problem, row.optimizer)]
        comparable.append(base is not None and row.optimizer != reference
                          and set(base["instance"]) == set(mine["instance"]))
        for metric, column in VERDICT_METRICS.items():
            if not comparable[-1]:
                lower = higher = float("nan")
            else:
                lower, higher = stats.one_sided_p(mine[column], base[column])
            raw[f"p_{metric}_lower"].append(lower)
            raw[f"p_{metric}_higher"].append(higher)
    names = list(raw)
    adjusted = stats.holm(np.concatenate([raw[name] for name in names])).reshape(len(names), -1)
    table = table.assign(**dict(zip(names, adjusted)))
    for metric in VERDICT_METRICS:
        table[f"verdict_{metric}"] = [
            stats.REFERENCE if row.optimizer == reference
            else stats.verdict(getattr(row, f"p_{metric}_lower"),
                               getattr(row, f"p_{metric}_higher")) if tested
            else "" for row, tested in zip(table.itertuples(), comparable)]
    return table


def _rounds(rounds: pd.DataFrame | None) -> pd.DataFrame:
    if rounds is None or rounds.empty:
        return pd.DataFrame(columns=["problem", "optimizer", "round", "seeds", *ROUND_METRICS])
    present = [m for m in ROUND_METRICS if m in rounds]
    grouped = rounds.groupby(["problem", "optimizer", "round"])
    frame = grouped[present].median(numeric_only=False).reset_index()
    frame.insert(3, "seeds", grouped.size().to_numpy())
    return frame


def _ecdf(targets: pd.DataFrame) -> pd.DataFrame:
    rows = []
    if len(targets):
        grid = evaluation_grid(int(targets["budget"].max()))
        for optimizer, group in targets.groupby("optimizer"):
            hit = group["evaluations"].astype(float).fillna(np.inf).to_numpy()
            reached = (hit[None, :] <= grid[:, None]).mean(axis=1)
            rows.extend({"optimizer": optimizer, "evaluations": int(e), "fraction": float(f)}
                        for e, f in zip(grid, reached))
    return pd.DataFrame(rows, columns=["optimizer", "evaluations", "fraction"])


def summarize_store(db: str | os.PathLike, reference: str = "ga") -> Summary:
    """``summarize`` of the store at ``db``; a ``ValueError`` saying so when it holds no runs, of
    which there is nothing to rank."""
    frames = read_store(db)
    if frames[0].empty:
        raise ValueError(f"the store {db} holds no runs; collect runs into it first "
                         f"(holo-bench collect RUNS --db {db})")
    return summarize(*frames, reference=reference)
