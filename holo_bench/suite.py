"""Named problem instances and suites, and the spec strings that define instances.

A spec string names a function and its parameters by short keys, e.g.
``ehrlich:v=32,L=128,c=4,k=4,q=4,seed=7`` (``v`` states, length ``L``, ``c`` motifs of length
``k``, quantization ``q``, optional ``eps`` epistasis, ``seed``) or ``rmf:L=12,seed=3``. Named
instances and suites are data, in ``suites.toml``.

A family is a function's parameters without the instance seed, e.g. ``ehrlich:v=32,L=32,c=4,k=4,
q=4``: its instances differ only in the seed that draws the transition matrix, motifs and
spacings. A named family lists its instance seeds, and runs on each of them (as spec strings), so a
result does not hinge on one draw; the leaderboard aggregates a family's instances together.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.resources import files

from holo_bench.functions import Ehrlich, RoughMtFuji, TestFunction
from holo_bench.params import close_matches, parse_assignment

FUNCTIONS: dict[str, type[TestFunction]] = {cls.spec_name: cls for cls in (Ehrlich, RoughMtFuji)}


@cache
def _catalog() -> dict:
    return tomllib.loads(files("holo_bench").joinpath("suites.toml").read_text())


def instances() -> dict[str, dict]:
    """Named instances: name -> ``{"spec": ..., "about": ...}``."""
    return dict(_catalog()["instances"])


def suites() -> dict[str, list[str]]:
    """Named suites: name -> instance names."""
    return dict(_catalog()["suites"])


def families() -> dict[str, dict]:
    """Named families: name -> ``{"spec": <spec without seed>, "seeds": [...], "about": ...}``."""
    return dict(_catalog().get("families", {}))


def tracks() -> dict[str, dict]:
    """Named tracks: name -> ``{"problems": <suite>, "budget", "count", "seeds": "0-9", "about"}``.
    """
    return dict(_catalog().get("tracks", {}))


def on_track(name: str, spec: str, budget: int, count: str) -> bool:
    """Whether a run of the instance ``spec`` (canonical, as a manifest holds it) at ``budget``
    under ``count`` is one of track ``name``'s: one of its problems, at its budget and counting
    rule (any seed)."""
    track = tracks()[name]
    return (spec in _track_specs(name) and budget == track["budget"]
            and count == track["count"])


@cache
def _track_specs(name: str) -> frozenset[str]:
    problems = resolve_problems([tracks()[name]["problems"]])
    return frozenset(make_function(problem).spec for problem in problems)


def family_members(name: str) -> list[str]:
    """The instances of a named family, as spec strings, in the order of its seeds."""
    family = families()[name]
    return [f"{family['spec']},seed={seed}" for seed in family["seeds"]]


def family_spec(spec: str) -> str:
    """The family of an instance: its canonical spec string without the ``seed`` item."""
    name, _, params = make_function(spec).spec.partition(":")
    return f"{name}:" + ",".join(item for item in params.split(",")
                                 if not item.startswith("seed="))


def regression_suites() -> dict[str, dict]:
    """Regression grids: name -> {optimizers, problems, seeds, budget, count, params}."""
    return {name: {"params": {}, "count": "distinct", **grid}
            for name, grid in _catalog().get("regression", {}).items()}


def parse_spec(spec: str) -> tuple[type[TestFunction], dict]:
    """Split a spec string into the function class and its constructor arguments."""
    name, _, params = spec.partition(":")
    if name not in FUNCTIONS:
        raise ValueError(f"unknown function {name!r} in spec {spec!r}; known: {sorted(FUNCTIONS)}")
    cls = FUNCTIONS[name]
    kwargs = {}
    for item in filter(None, params.split(",")):
        key, value = (parse_assignment(item, f"spec {spec!r}") if "=" in item
                      else (item.strip(), ...))
        if key not in cls.spec_keys or value is ...:
            raise ValueError(
                f"bad parameter {item!r} in spec {spec!r}; {name} takes "
                + ", ".join(f"{k}=<{a}>" for k, a in cls.spec_keys.items())
            )
        if value is not None and (isinstance(value, (bool, str))):
            raise ValueError(f"parameter value {item.partition('=')[2].strip()!r} in spec {spec!r} "
                             "is not a number (or none)")
        kwargs[cls.spec_keys[key]] = value
    return cls, kwargs


def make_function(name_or_spec: str) -> TestFunction:
    """Build the function of a named instance (``f2``) or of a spec string."""
    spec = instances().get(name_or_spec, {}).get("spec", name_or_spec)
    if ":" not in spec and spec not in FUNCTIONS:  # a name, not a spec string
        names = [*instances(), *families(), *suites()]
        raise ValueError(
            f"unknown problem {name_or_spec!r}{close_matches(name_or_spec, names)}: give an "
            "instance, family or suite name (`holo-bench list` shows them) or a spec string such "
            "as ehrlich:v=32,L=32,c=4,k=4,q=4,seed=1")
    cls, kwargs = parse_spec(spec)
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required parameter is missing
        raise ValueError(f"incomplete spec {spec!r}: {err}") from None


def resolve_problems(names: list[str]) -> list[str]:
    """Expand suite names into their members and family names into their instances' spec
    strings; instance names and spec strings pass through."""
    known, named_families = suites(), families()
    problems = []
    for name in names:
        for member in known.get(name, [name]):
            problems.extend(family_members(member) if member in named_families else [member])
    return problems
