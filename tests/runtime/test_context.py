"""Settings are read from the environment in the entry points only; everything else is given
them (or the app's context, ``notifyhub.app``), so a module can be used with any settings.
"""

from __future__ import annotations

import ast
from pathlib import Path

import notifyhub

PACKAGE = Path(notifyhub.__file__).parent
# The processes' entry points: the worker's application context and the command line.
ENTRY_POINTS = {"app.py", "cli/main.py", "cli/operator.py", "runtime/settings.py"}


def _modules_reading_settings() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and any(a.name == "get_settings" for a in node.names):
                found.add(path.relative_to(PACKAGE).as_posix())
            if isinstance(node, ast.Name) and node.id == "get_settings":
                found.add(path.relative_to(PACKAGE).as_posix())
    return found


def test_only_the_entry_points_read_the_settings() -> None:
    assert _modules_reading_settings() <= ENTRY_POINTS


def test_the_check_sees_a_module_that_reads_them() -> None:
    assert "app.py" in _modules_reading_settings()
