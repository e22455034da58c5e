"""The README stays true: its commands, settings and CI script agree with the code."""

from __future__ import annotations

import re

from klash_sync.cli.main import build_parser
from klash_sync.settings import Settings
from tests.fixtures.common import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_runs_exactly_the_readme_test_command():
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    test_command = next(b for b in blocks if "pytest" in b and "pip install" in b).splitlines()[0]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == test_command


QUICK_START = "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/klash-sync run"


def test_readme_quick_start_runs_the_main_job_in_a_virtual_environment():
    """A venv in the command itself: Debian's and Ubuntu's system Python refuse pip (PEP 668)."""
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    assert blocks[0] == QUICK_START


def test_ci_runs_the_readme_quick_start_with_debians_python():
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"QUICK_START=\"{QUICK_START}\"" in ci
    assert "/usr/bin/python3" in ci


def test_every_setting_is_documented():
    for name in Settings.model_fields:
        assert f"`KLASH_{name.upper()}`" in README, name
    example = (ROOT / "config" / "klash-sync.env.example").read_text()
    for name in Settings.model_fields:
        assert f"KLASH_{name.upper()}" in example, name


def test_every_command_is_documented():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        assert f"`klash-sync {name}" in README, name
