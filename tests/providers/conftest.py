"""Provider tests build their settings from what each test gives, not from the shell's
environment (``make`` exports ``NOTIFYHUB_SINK_CHANNELS=all``, for instance)."""

from __future__ import annotations

import os

import pytest

# The settings a provider or the registry reads.
ISOLATED_PREFIXES = ("NOTIFYHUB_", "TWILIO_", "AWS_")


@pytest.fixture(autouse=True)
def settings_from_the_test_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES):
            monkeypatch.delenv(name)
