"""No module of klash_sync is longer than 300 lines: each has one job a reader can hold."""

from __future__ import annotations

from pathlib import Path

LIMIT = 300
PACKAGE = Path(__file__).resolve().parents[2] / "klash_sync"


def test_no_module_is_over_300_lines():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 10, f"no modules found under {PACKAGE}"
    sizes = {path.relative_to(PACKAGE.parent).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for path in modules}
    over = {name: lines for name, lines in sizes.items() if lines > LIMIT}
    assert not over, f"modules over {LIMIT} lines (split them by job): " + ", ".join(
        f"{name} ({lines})" for name, lines in sorted(over.items(), key=lambda item: -item[1]))
