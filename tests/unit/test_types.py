"""klash_sync/ type-checks clean under mypy, strict as configured in pyproject.toml [tool.mypy].

Run from the suite so that the README's test command (and CI) checks types too.
"""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.common import ROOT


def test_mypy_strict_is_clean_on_klash_sync():
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-color-output", "--no-error-summary"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
