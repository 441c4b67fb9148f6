"""Running the operator's ``notifyhub`` command against a worker's deployment."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.support.stack import Services
from tests.support.workers import Worker

# Every command here is bounded by its own flags (--count, --idle-timeout); this is the
# backstop should one hang.
COMMAND_TIMEOUT_SECONDS = 60.0


async def notifyhub(
    services: Services, worker: Worker, *args: str, admin_token: str | None = None
) -> tuple[int, str, str]:
    """Run ``notifyhub ARGS`` against the worker's deployment: exit code, stdout, stderr."""
    env = {
        **os.environ,
        **services.environ(),
        "NOTIFYHUB_APP_ID": worker.topic_prefix,
        "NOTIFYHUB_TOPIC_PREFIX": worker.topic_prefix,
        "NOTIFYHUB_ADMIN_TOKEN": admin_token or worker.admin_token,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifyhub.cli.main",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_SECONDS)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
