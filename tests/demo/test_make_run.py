"""The README's first steps, as a newcomer takes them: ``make run``, open the printed inbox
link in Chromium, run the printed curl, and watch the message arrive on the page live.

``make run`` runs for real (its own free port, a temporary RUN_DIR, a deployment id of its
own) against the session's stack, which it must find already up and leave alone.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import async_playwright, expect

from tests.support.browser import CHROMIUM, UI_TIMEOUT_MS
from tests.support.stack import REPO, STACK_SCRIPT, Services, free_port, from_environment, native_stack

pytestmark = pytest.mark.stack

WORKERS_SCRIPT = REPO / "deployments" / "local" / "workers.sh"
# `make run` on an installed machine with the stack up takes seconds; the rest is a worker
# joining its group and recovering its (empty) tables.
MAKE_RUN_TIMEOUT_SECONDS = 240.0
CURL_TIMEOUT_SECONDS = 30.0
# How long the printed curl is retried while the worker answers 503.
CURL_RETRY_SECONDS = 60.0
# Settings `make run` chooses itself; a value left in the test's environment would win.
MAKE_RUN_CHOICES = (
    "NOTIFYHUB_SINK_CHANNELS",
    "NOTIFYHUB_WEB_PORT",
    "NOTIFYHUB_EMAIL_PROVIDERS",
    "NOTIFYHUB_SMS_PROVIDERS",
    "NOTIFYHUB_PUSH_PROVIDERS",
    "NOTIFYHUB_INAPP_PROVIDERS",
)


def _port(url: str) -> str:
    return str(urlsplit(url if "//" in url else f"//{url}").port)


def _stack_environ(services: Services, stack_dir: Path | None) -> dict[str, str]:
    """The environment under which ``stack.sh`` (and so ``make run``) means these services."""
    env = {name: value for name, value in os.environ.items() if name not in MAKE_RUN_CHOICES}
    env |= {
        "NOTIFYHUB_KAFKA_PORT": _port(services.kafka_bootstrap_servers),
        "NOTIFYHUB_PG_PORT": _port(services.database_url),
        "NOTIFYHUB_REDIS_PORT": _port(services.redis_url),
    }
    if stack_dir is not None:
        env["NOTIFYHUB_STACK_DIR"] = str(stack_dir)
    return env


def _means(env: dict[str, str], services: Services) -> bool:
    printed = subprocess.run(
        [str(STACK_SCRIPT), "env"], env=env, capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("=", 1) for line in printed.split()) == services.environ()


@pytest.fixture(scope="module")
def stack_environ(services: Services) -> Iterator[dict[str, str]]:
    """The session's stack when it is ``stack.sh``'s (the addresses from ``stack.sh env``);
    otherwise (testcontainers, the suite's own native stack) one started for this module."""
    env = _stack_environ(services, None)
    # Only services given from outside can be `stack.sh`'s default stack (its state in the
    # repository's .stack); a native stack the suite started has a directory of its own.
    if from_environment() is not None and _means(env, services):
        yield env
        return
    with native_stack() as (stack, own):
        yield _stack_environ(own, stack.directory)


async def _run(command: list[str] | str, env: dict[str, str], seconds: float) -> tuple[int, str]:
    """Run a command (a list, or a string for the shell) from the repository, for at most
    ``seconds``: its exit code and output, standard error included."""
    if isinstance(command, str):
        process = await asyncio.create_subprocess_shell(
            command, env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    else:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    output, _ = await asyncio.wait_for(process.communicate(), seconds)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def printed_curl(output: str) -> str:
    """The curl that sends the demo recipient a message: its first line and continuations."""
    lines = output.splitlines()
    first = next(i for i, line in enumerate(lines) if "curl -s -X POST" in line)
    command = [lines[first]]
    while command[-1].endswith("\\"):
        command.append(lines[first + len(command)])
    return "\n".join(command)


async def test_make_run_prints_an_inbox_link_and_a_curl_that_fills_it_live(
    stack_environ: dict[str, str], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    deployment = f"demo-{uuid.uuid4().hex[:10]}"
    env = {
        **stack_environ,
        # Its own consumer group and topics: another `make run` on this stack is another
        # deployment, and must not take this one's partitions.
        "NOTIFYHUB_APP_ID": deployment,
        "NOTIFYHUB_TOPIC_PREFIX": deployment,
    }
    make_run = ["make", "run", f"WORKER_PORT={free_port()}", f"RUN_DIR={run_dir}"]
    try:
        code, output = await _run(make_run, env, MAKE_RUN_TIMEOUT_SECONDS)
        assert code == 0, output
        for service in ("postgres", "redis", "kafka"):
            assert f"stack: {service} already running" in output, output

        link = re.search(r"http://127\.0\.0\.1:\d+/inbox#token=\S+", output)
        assert link is not None, output
        curl = printed_curl(output)
        assert '"channel":"inapp"' in curl and "Hello Ada" in curl, curl
        # This run's message, told apart from the demo inbox's earlier ones.
        text = f"Hello Ada {uuid.uuid4().hex[:8]}"

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = await browser.new_page()
                await page.goto(link.group(0))
                await expect(page.get_by_test_id("status")).to_have_text("live", timeout=UI_TIMEOUT_MS)

                # As docs/api.md tells a client: a 503 says retry. A worker that has just
                # created its topics can find them missing from Kafka's metadata for a while.
                deadline = asyncio.get_running_loop().time() + CURL_RETRY_SECONDS
                while True:
                    code, answer = await _run(curl.replace("Hello Ada", text), env, CURL_TIMEOUT_SECONDS)
                    if "SERVICE_UNAVAILABLE" not in answer:
                        break
                    if asyncio.get_running_loop().time() > deadline:
                        break
                    await asyncio.sleep(1)
                assert code == 0 and '"success":true' in answer, answer

                arrived = page.get_by_test_id("message").filter(has_text=text)
                await expect(arrived).to_have_count(1, timeout=UI_TIMEOUT_MS)
            finally:
                await browser.close()

        code, status = await _run([str(STACK_SCRIPT), "status"], env, CURL_TIMEOUT_SECONDS)
        assert code == 0 and status.count(" up ") == 3, status
    finally:
        # Only the workers: `make stop` would stop the stack too, which others use.
        await _run([str(WORKERS_SCRIPT), "stop"], {**env, "RUN_DIR": str(run_dir)}, 120.0)
