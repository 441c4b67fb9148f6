"""``notifyhub worker`` refuses to start with a shipped default or short secret (no services:
the check comes before anything connects)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# It starts real worker processes (which must refuse to start before they connect to anything).
pytestmark = pytest.mark.stack

GOOD_SECRET = "0123456789abcdef" * 2
SECRETS = ("NOTIFYHUB_ADMIN_TOKEN", "NOTIFYHUB_WS_TOKEN_SECRET", "NOTIFYHUB_WEBHOOK_SECRET_KEY")
# What the caller's environment may hold that would change the outcome.
LEFT_OUT = (
    *SECRETS,
    "NOTIFYHUB_ADMIN_TOKEN_PREVIOUS",
    "NOTIFYHUB_WS_TOKEN_PREVIOUS_SECRET",
    "NOTIFYHUB_DEVELOPMENT",
)
# The refusal comes before Kafka is asked anything; a worker that started would not exit.
START_TIMEOUT_SECONDS = 60


def run_worker(**secrets: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in LEFT_OUT}
    env.update(secrets)
    return subprocess.run(
        [sys.executable, "-m", "notifyhub.cli.main", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_SECONDS,
    )


@pytest.mark.parametrize("name", SECRETS)
def test_the_worker_refuses_a_default_secret_in_one_line_naming_it(name: str) -> None:
    others = {other: GOOD_SECRET for other in SECRETS if other != name}
    finished = run_worker(**others)
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [
        f"notifyhub worker: {name} is the shipped development default: set it to a random "
        "value (openssl rand -hex 32), or NOTIFYHUB_DEVELOPMENT=true on a developer's machine"
    ]


def test_the_worker_refuses_a_short_secret() -> None:
    secrets = dict.fromkeys(SECRETS, GOOD_SECRET)
    finished = run_worker(**{**secrets, "NOTIFYHUB_WS_TOKEN_SECRET": "CHANGE-ME"})
    assert finished.returncode == 2
    assert "NOTIFYHUB_WS_TOKEN_SECRET is shorter than 32 characters" in finished.stderr
