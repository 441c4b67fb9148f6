"""Assemble the worker: the app with every agent and web view registered."""

from __future__ import annotations

import faust


def load_app() -> faust.App:
    """The Faust app, after importing the modules that register agents and routes on it."""
    import notifyhub.agents
    import notifyhub.web.views  # noqa: F401
    from notifyhub.app import app

    return app
