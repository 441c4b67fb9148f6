"""What the digest and escalation tests share: a worker whose in-app messages go to the
real inbox (the other channels to the sink). Their helpers are in tests/support/workflows.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.workers import Worker


@pytest.fixture(scope="module")
def workflow_worker(worker_factory: Callable[..., Worker]) -> Worker:
    return worker_factory(
        NOTIFYHUB_SINK_CHANNELS="email,sms,push", NOTIFYHUB_WEBHOOK_ALLOWED_HOSTS="127.0.0.1"
    )
