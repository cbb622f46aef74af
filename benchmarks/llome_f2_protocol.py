"""The llome_f2 experiment's runs (docs/llome-f2.md), which LaMBO-2's comparison (docs/lambo2.md)
reuses by identity: the same instances, budget, counting rule, seed plans and LLOME settings, so a
run the two share is made once. Both reports pick their runs with these facts."""

from __future__ import annotations

from holo_bench import suite

TRACK = suite.tracks()["llome_f2"]
BUDGET, COUNT = TRACK["budget"], TRACK["count"]
INSTANCES = suite.suites()[TRACK["problems"]]  # f2, f2_seed1, f2_seed2
# Seeds per instance: the expensive arms' 8 runs (3 / 3 / 2), the cheap arms' 30 (10 / 10 / 10).
EIGHT = {"f2": range(3), "f2_seed1": range(3), "f2_seed2": range(2)}
THIRTY = {instance: range(10) for instance in INSTANCES}
# LLOME's compute settings in both experiments (every other parameter at its default).
LLOME_SETTINGS = {"samples": 2, "max_pairs": 4096}


def instance_names() -> dict[str, str]:
    """A manifest's canonical instance spec -> the instance's name."""
    return {suite.instances()[name]["spec"]: name for name in INSTANCES}


def missing(runs, plans: dict[str, dict[str, range]]) -> list[str]:
    """The runs of ``plans`` (arm -> instance -> seeds) that the table ``runs`` (with columns
    arm, instance, seed) lacks, named."""
    have = set(zip(runs["arm"], runs["instance"], runs["seed"]))
    return [f"{arm} {instance} seed {seed}" for arm, seeds in plans.items()
            for instance, members in seeds.items() for seed in members
            if (arm, instance, seed) not in have]
