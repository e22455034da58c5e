"""The floors of the house hold: every import points down (import-linter's contracts in
pyproject.toml), so an arrow pointing back up fails the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures.common import ROOT


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout
