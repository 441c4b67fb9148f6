"""A held table of each test's own: a dict where the worker has a Faust table."""

from __future__ import annotations

from typing import Any

import pytest

from notifyhub.tables.held import HeldTable
from tests.support.held import PARTITIONS


@pytest.fixture
def table() -> dict[bytes, Any]:
    return {}


@pytest.fixture
def held(table: dict[bytes, Any]) -> HeldTable:
    return HeldTable(table, PARTITIONS)
