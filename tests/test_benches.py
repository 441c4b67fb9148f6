"""The benchmarks in ``bench/`` run briefly against the session's services, as scripts the
way a person runs them, so that they cannot rot unnoticed: each must exit 0 and print
(``--json``) figures that add up. Timings are not checked, only that they are there and
in order; the figures that must hold whatever the machine's load are checked exactly.

``http_load.py`` loads the session's worker; ``inbox_load.py`` and ``topology.py`` start
deployments of their own (workers, topics) on the same services and remove them at the
end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import pytest

from bench.http_load import is_loopback_host
from tests.support.api import Tenant
from tests.support.stack import REPO, Services
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

BENCH = REPO / "bench"
# A bench that has not finished in this long has hung: it is interrupted and the test
# fails. Generous, as the machine may be loaded: the slowest here (inbox_load.py, two
# workers started one after the other) takes 15 to 30 s.
BENCH_TIMEOUT_SECONDS = 100
# After the interrupt (SIGINT, so that its clean-up runs: it stops its workers and deletes
# its topics), how long the bench has before it and its workers are killed.
BENCH_CLEAN_UP_SECONDS = 30
# Seconds of load from http_load.py, per loop: enough for a few hundred requests.
HTTP_WARMUP_SECONDS = 0.5
HTTP_DURATION_SECONDS = 3.0
# Shorter than warmup + duration on purpose: the closed loop's clients must keep sending
# for the whole window, not only for one request timeout (they used to be cancelled then).
HTTP_CLOSED_LOOP_TIMEOUT_SECONDS = 2.0
HTTP_CONCURRENCY = 4
HTTP_RATE = 20
INBOX_CLIENTS = 20
# Two: the second worker starts once the first has made the topics, and half of the
# messages cross workers through Redis.
INBOX_WORKERS = 2
# Few partitions make the deployment's topics quick to create.
INBOX_PARTITIONS = 2
INBOX_RATE = 20
INBOX_RECEIPT_TIMEOUT_SECONDS = 30
TOPOLOGY_COUNT = 200


@dataclass(frozen=True)
class BenchRun:
    returncode: int
    stdout: str
    stderr: str

    def summary(self) -> dict[str, Any]:
        """The ``--json`` result, once the run is known to have succeeded."""
        assert self.returncode == 0, f"exit code {self.returncode}; stderr:\n{self.stderr[-4000:]}"
        return cast(dict[str, Any], json.loads(self.stdout))


@pytest.fixture
def bench_env(services: Services) -> dict[str, str]:
    """The environment of a bench: the session's services, and this checkout's notifyhub
    (the worker processes a bench starts inherit it)."""
    hosts = [urlsplit(f"//{server}").hostname for server in services.kafka_bootstrap_servers.split(",")]
    hosts += [urlsplit(services.database_url).hostname, urlsplit(services.redis_url).hostname]
    if not all(is_loopback_host(host) for host in hosts):
        # testcontainers may serve them on a Docker host; CI runs the native stack, where
        # a bench that cannot run is a failure, never a skip.
        why = f"the benches refuse services that are not on loopback addresses: {hosts}"
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **services.environ(), "PYTHONPATH": path}


async def run_bench(script: str, *args: str, env: dict[str, str]) -> BenchRun:
    """Run ``bench/<script>`` to its end, bounded by ``BENCH_TIMEOUT_SECONDS``."""
    # A session of its own: the workers it starts are in its process group, which is
    # killed at the end whatever happened, so none is left behind.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH / script),
        *args,
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    finished = asyncio.ensure_future(process.communicate())
    try:
        done, _ = await asyncio.wait({finished}, timeout=BENCH_TIMEOUT_SECONDS)
        if not done:
            process.send_signal(signal.SIGINT)
            await asyncio.wait({finished}, timeout=BENCH_CLEAN_UP_SECONDS)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = await finished
    if not done:
        pytest.fail(
            f"{script} did not finish in {BENCH_TIMEOUT_SECONDS}s; stderr:\n{stderr.decode()[-4000:]}"
        )
    assert process.returncode is not None  # communicate() has waited for the exit
    return BenchRun(process.returncode, stdout.decode(), stderr.decode())


def assert_percentiles(latency_ms: dict[str, float | None]) -> None:
    values = list(latency_ms.values())
    assert all(value is not None and value > 0 for value in values), latency_ms
    # None of them is None (asserted above).
    assert values == sorted(cast(list[float], values)), f"percentiles out of order: {latency_ms}"


async def test_http_load_reports_both_loops(
    worker: Worker, tenant: Tenant, bench_env: dict[str, str]
) -> None:
    common = ["--url", worker.base_url, "--api-key", tenant.api_key, "--json"]
    window = ["--warmup", str(HTTP_WARMUP_SECONDS), "--duration", str(HTTP_DURATION_SECONDS)]

    closed = (
        await run_bench(
            "http_load.py",
            *common,
            *window,
            "--concurrency",
            str(HTTP_CONCURRENCY),
            "--timeout",
            str(HTTP_CLOSED_LOOP_TIMEOUT_SECONDS),
            env=bench_env,
        )
    ).summary()
    opened = (
        await run_bench(
            "http_load.py",
            *common,
            *window,
            "--rate",
            str(HTTP_RATE),
            "--concurrency",
            str(HTTP_CONCURRENCY),
            env=bench_env,
        )
    ).summary()

    for summary, mode in ((closed, "closed"), (opened, "open")):
        assert summary["mode"] == mode
        assert summary["duration_measured_s"] == pytest.approx(HTTP_DURATION_SECONDS)
        # The session's worker accepts everything: nothing refused, timed out or failed.
        assert summary["accepted"] > 0, summary
        assert summary["status_counts"] == {"202": summary["accepted"]}, summary
        assert summary["requests_measured"] == summary["accepted"], summary
        assert (summary["refused"], summary["timed_out"], summary["errors"]) == (0, 0, {}), summary
        assert summary["refused_by_status"] == {"429": 0, "503": 0}
        assert summary["unfinished"] == 0, summary
        assert summary["throughput_accepted_per_s"] == pytest.approx(
            summary["accepted"] / HTTP_DURATION_SECONDS
        )
        assert_percentiles(summary["latency_ms"])
    # The open loop keeps to its rate: no more requests than were scheduled.
    assert opened["requests_sent"] <= HTTP_RATE * (HTTP_WARMUP_SECONDS + HTTP_DURATION_SECONDS) + 1
    assert opened["accepted"] <= opened["requests_sent"]
    assert {"late", "dropped"} <= opened.keys()


async def test_inbox_load_delivers_every_notification_to_its_socket(
    bench_env: dict[str, str],
) -> None:
    summary = (
        await run_bench(
            "inbox_load.py",
            "--clients",
            str(INBOX_CLIENTS),
            "--workers",
            str(INBOX_WORKERS),
            "--partitions",
            str(INBOX_PARTITIONS),
            "--rate",
            str(INBOX_RATE),
            "--timeout",
            str(INBOX_RECEIPT_TIMEOUT_SECONDS),
            "--json",
            env=bench_env,
        )
    ).summary()

    assert (summary["clients"], summary["workers"]) == (INBOX_CLIENTS, INBOX_WORKERS)
    assert summary["http_errors"] == 0, summary
    assert summary["sent"] == summary["received"] == INBOX_CLIENTS, summary
    assert summary["missing"] == 0
    assert summary["connect_seconds"] > 0
    assert summary["send_rate_per_s"] > 0
    assert_percentiles(summary["latency_ms"])


async def test_topology_delivers_every_notification_once(bench_env: dict[str, str]) -> None:
    run = await run_bench(
        "topology.py", "--count", str(TOPOLOGY_COUNT), "--skip-relay", "--json", env=bench_env
    )
    summary = run.summary()

    assert summary["count"] == TOPOLOGY_COUNT
    ours = summary["notifyhub"]
    assert ours["delivered"] == TOPOLOGY_COUNT, ours
    assert (ours["missing"], ours["duplicates"]) == (0, 0), ours
    assert ours["throughput_per_s"] > 0
    assert_percentiles(ours["latency_ms"])
    assert summary["relay"] is None
