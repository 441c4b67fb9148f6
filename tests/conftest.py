"""The fixtures and hooks live in tests/support/plugin.py; the helpers in tests/support/."""

pytest_plugins = ["tests.support.plugin"]
