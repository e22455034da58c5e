"""Fixtures of the system tests: a headless Chromium shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.browser import launch


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()
