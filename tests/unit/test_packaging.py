"""Dependency hygiene: every lower bound is the pinned version the suite and the image use."""

from __future__ import annotations

import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement

from tests.fixtures.common import ROOT


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            found[name.lower().replace("_", "-")] = pinned
    return found


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def extra_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["optional-dependencies"]["test"]]


def test_every_lower_bound_is_the_pinned_version():
    pinned = pins()
    for req in runtime_requirements():
        name = req.name.lower().replace("_", "-")
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert lower == [pinned[name]], f"{req}: lower bound must equal the pin {pinned.get(name)}"


def test_the_suite_runs_on_the_pinned_versions():
    pinned = pins()
    for req in runtime_requirements():
        assert version(req.name) == pinned[req.name.lower().replace("_", "-")], req.name


def test_constraints_pin_everything_the_image_installs():
    pinned = pins()
    assert all(pinned.values())
    for req in runtime_requirements():
        assert req.name.lower().replace("_", "-") in pinned


def test_every_test_extra_is_pinned_at_its_lower_bound():
    pinned = pins()
    for req in extra_requirements():
        name = req.name.lower().replace("_", "-")
        bound = [s.version for s in req.specifier if s.operator in (">=", "==")]
        assert bound == [pinned[name]], f"{req}: its bound must equal the pin {pinned.get(name)}"


def test_constraints_pin_every_installed_package():
    """What the README's test command installs (with -c constraints.txt) is all pinned,
    transitive dependencies included, at the version installed."""
    from importlib.metadata import distributions

    pinned = pins()
    for dist in distributions():
        name = dist.metadata["Name"].lower().replace("_", "-")
        if name in ("klash-sync", "pip", "setuptools", "wheel"):
            continue
        assert pinned.get(name) == dist.version, f"{name} {dist.version} is not pinned in constraints.txt"
