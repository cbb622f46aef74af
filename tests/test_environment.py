"""The installed dependencies against pyproject's: every dependency has a lower bound, what is
installed satisfies the declared ranges, and in the lowest-versions environment (``.ci/run`` runs
the suite in ``.venv-numpy1`` with ``HOLO_BENCH_LOWEST_VERSIONS=1``) what is installed is exactly
each lower bound, numpy 1.x among them, so that CI tests the bounds it declares."""

import os
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
DEPENDENCIES = [Requirement(text) for text in
                tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]]


def lower_bound(requirement: Requirement) -> Version:
    bounds = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
    assert len(bounds) == 1, f"{requirement}: scripts/install.sh --numpy1 needs one `>=` bound"
    return bounds[0]


@pytest.mark.parametrize("requirement", DEPENDENCIES, ids=str)
def test_installed_version_is_in_the_declared_range(requirement):
    lower_bound(requirement)
    assert requirement.specifier.contains(version(requirement.name), prereleases=True)


@pytest.mark.skipif(not os.environ.get("HOLO_BENCH_LOWEST_VERSIONS"),
                    reason="only in the lowest-versions environment (bash scripts/install.sh "
                           "--numpy1, then HOLO_BENCH_LOWEST_VERSIONS=1)")
@pytest.mark.parametrize("requirement", DEPENDENCIES, ids=str)
def test_lowest_versions_environment_has_exactly_the_lower_bounds(requirement):
    installed = Version(version(requirement.name))
    assert Version(installed.public) == lower_bound(requirement)
    if requirement.name == "numpy":
        assert installed.major == 1
