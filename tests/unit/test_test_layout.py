"""The suite keeps its shape: four tiers, shared parts in tests/fixtures/, and no test module
importing another (what tests share lives in fixtures, so a test file can move, or go,
without breaking others).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.fixtures.common import ROOT

TESTS = ROOT / "tests"
TIERS = ("unit", "contract", "integration", "system")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imported_modules(source: str, module_name: str) -> set[str]:
    """Every module ``source`` (the text of ``module_name``) imports, relative imports resolved,
    ``from package import module`` included."""
    package = module_name.rsplit(".", 1)[0].split(".")
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, module_name)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            # `from tests.unit import test_render` names a module, not an attribute
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def is_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return name.startswith("tests.") and (last.startswith("test_") or last == "conftest")


def test_the_checker_sees_relative_absolute_and_package_imports():
    # The checker itself can fail: each spelling of an import of a test module is caught.
    spellings = {
        "from .test_render import x\n": "tests.unit.test_render",
        "from ..integration.test_daemon import settle\n": "tests.integration.test_daemon",
        "import tests.system.test_cli\n": "tests.system.test_cli",
        "from tests.unit import test_plan\n": "tests.unit.test_plan",
        "from ..conftest import fetch\n": "tests.conftest",
    }
    for source, module in spellings.items():
        found = {m for m in imported_modules(source, "tests.unit.test_example") if is_test_module(m)}
        assert module in found, source
    harmless = "from tests.fixtures.common import ROOT\nfrom .helpers import x\nimport pytest\n"
    assert not {m for m in imported_modules(harmless, "tests.unit.test_example") if is_test_module(m)}


def test_no_test_module_imports_another():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        for module in imported_modules(path.read_text(encoding="utf-8"), _module(path)):
            if is_test_module(module) and module != _module(path):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_every_test_module_is_in_a_tier_and_every_tier_is_a_package():
    for tier in (*TIERS, "fixtures"):
        assert (TESTS / tier / "__init__.py").exists(), tier
    for path in TESTS.rglob("test_*.py"):
        if "node_modules" in path.parts:
            continue
        assert path.relative_to(TESTS).parts[0] in TIERS, path
    assert not list((TESTS / "fixtures").glob("test_*.py"))
