"""Queries live in ``notifyhub.db``: a view calls them and holds no SQL of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import notifyhub.web

WEB = Path(notifyhub.web.__file__).parent


def test_no_view_holds_sql() -> None:
    """Queries live in ``notifyhub.db``; a view calls them."""
    keywords = ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM")
    for path in WEB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not any(k in node.value for k in keywords), f"{path.name}: {node.value[:60]!r}"
