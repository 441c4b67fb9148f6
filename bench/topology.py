"""End-to-end benchmark of NotifyHub's Kafka topology, beside three relays that do nothing.

It makes a fresh deployment of its own on the running native stack (app id and topic
prefix ``bench-<8 hex>``): migrates the database, creates a tenant, starts ``--workers``
worker processes that send every channel to the sink provider, and produces intake
messages (the public v1 contract, each with its own ``id``) straight to
``{prefix}.intake``. The load is either

* a burst (default): ``--count`` messages, as fast as one producer takes them; latency
  is then mostly time spent waiting in the backlog (about count / throughput / 2 at the
  median), not the latency of one notification through an idle pipeline; or
* an open loop (``--rate R --duration S``): R·S messages, each handed to the producer at
  its slot of a fixed schedule (never earlier, without waiting for acks in between),
  whatever the pipeline does; latency then shows how the pipeline keeps up with R/s.

A notification is done when PostgreSQL says so: its ``notifications`` row is
``delivered``. The bench polls the tenant's rows until every expected notification has a
final status (``delivered``, ``failed``, ``dropped``, ``cancelled``) or ``--timeout``
seconds passed after the last message was produced, and reports:

* throughput: delivered / (last delivered - first produced);
* intake→delivered latency per notification (p50/p95/p99/max, nearest rank): the row's
  ``updated_at`` (the worker's clock, this machine's, when the provider answered; the
  send stage writes it once its batch's sends are done) minus the moment the message was
  handed to the producer;
* missing (never delivered) and not final (neither delivered nor another final status,
  with their statuses; ``absent`` if the row does not even exist);
* duplicates, from the sink: ids its list holds more than once, and ``sink repeats``,
  sends the provider was asked for twice that its dedupe key absorbed;
* the workers' CPU seconds per 1,000 delivered notifications (utime + stime from
  ``/proc/<pid>/stat``, from just before the first message is produced to when the
  last is seen delivered), and each worker's peak RSS (``VmHWM``, with the highest
  ``VmRSS`` sampled every second as a check).

Then, on the same broker, with the workers stopped, the baselines, each fed the same
messages the same way (burst or schedule) and drained from its last topic by a plain
consumer (a record arrives when that consumer reads it), with the same figures:

* the plain relay (``{prefix}-relay.0`` → … → ``{prefix}-relay.<hops>``, aiokafka only,
  JSON decoded and re-encoded at each hop, acks=all, each hop's offsets committed only
  after what it produced is acknowledged): what Kafka and aiokafka can do. Its tasks
  share this process with the load producer and the drain, so its CPU figure is this
  process's and includes those;
* the stock Faust relay (``bench/faust_relay.py``, ``faust.App``, ``take_events`` and
  ``Topic.send``, a worker process of its own): what Faust itself costs;
* the NotifyHub Faust relay (the same with ``notifyhub.kafka.faust_app``: ``NotifyHubApp``,
  ``take_batches`` and ``produce``): what our Faust changes leave of that cost.

Each relay makes ``--relay-hops`` topic-to-topic hops (4 by default: as many agents as
consume a notification's records in a worker, intake → enrich → send.<channel> → delivery
events, the last of them two records a notification); the report gives the ratios
NotifyHub/each baseline and Faust notifyhub/Faust stock. What
NotifyHub does beyond moving records (PostgreSQL reads and writes, the sink, its tables)
has no counterpart in the relays. ``--skip-relay`` skips every baseline;
``--faust-relay`` chooses the Faust ones.

With ``--provider ses|smtp|twilio`` the workers send through that provider's real client
to its local protocol server (``tests/support/servers/``, in a process of its own) instead of the
sink; done is still ``delivered`` in PostgreSQL, and duplicates are notifications with
more than one ``delivered`` row in the delivery log (one per provider answer).

Addresses come from ``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL`` and ``REDIS_URL``,
else from ``deployments/local/stack.sh env``; each must be a loopback address. At the
end the workers and relays are stopped and the deployment's topics and sink list are
deleted; PostgreSQL rows (the tenant and its notifications) and Kafka's record of the
consumer groups (expired by the broker) are left behind.

    deployments/local/stack.sh up
    .venv/bin/python bench/topology.py --count 20000 --workers 2
    .venv/bin/python bench/topology.py --rate 200 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

# Run as a script, only this folder is on sys.path: the repository's root goes first (as in
# tests/test_benches.py's PYTHONPATH), so that the other benchmarks import under the names
# the tests and mypy give them (bench.http_load). Shares the HTTP load generator's helpers.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.http_load import is_loopback_host, nearest_rank, positive_float, positive_int, request_body
from notifyhub.db import tenants
from notifyhub.model.status import FINAL_STATUSES, Status
from notifyhub.providers.sink import sink_key, sink_keys

REPO = Path(__file__).resolve().parent.parent
STACK_SCRIPT = REPO / "deployments" / "local" / "stack.sh"
STACK_HINT = "start the native stack with: deployments/local/stack.sh up"
SERVICE_VARIABLES = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")
EXIT_FAILED = 1  # a notification is missing, or the deployment could not run
EXIT_NO_STACK = 2  # same as argparse's usage errors: nothing was started

# Tests give a worker 90 s to join its group and recover its tables; a cold machine more.
WORKER_READY_TIMEOUT_SECONDS = 120
# Faust commits offsets and closes its tables on SIGTERM; past this it is killed.
WORKER_STOP_TIMEOUT_SECONDS = 30
MIGRATE_TIMEOUT_SECONDS = 120
STACK_ENV_TIMEOUT_SECONDS = 10
# Bounds every single call to Kafka, PostgreSQL or Redis, so a dead service cannot
# hang the run (Kafka's own default request timeout is 40 s).
SERVICE_TIMEOUT_SECONDS = 45
CONNECT_TIMEOUT_SECONDS = 3
# A few milliseconds of batching is what a throughput-minded producer does.
PRODUCER_LINGER_MS = 5
POLL_SECONDS = 0.5
# ``notifications`` has no index on updated_at: the status keyset makes PostgreSQL read
# every row of the tenant (about 0.7 µs each here), a lookup by primary key one per
# pending id (about 2.5 µs each). Up to this many pending ids, the lookup is the
# cheaper for any run of a few thousand notifications or more.
PROBE_MAX_IDS = 1000
# The lookup also runs this often whatever the count, so that a row the keyset missed
# ends a run after at most this long.
PROBE_EVERY_SECONDS = 10
PROGRESS_SECONDS = 5
RSS_SAMPLE_SECONDS = 1
# LRANGE this many records per call, so a 50,000-record list is not one huge reply.
SINK_READ_CHUNK = 5000
DEFAULT_COUNT = 50_000
# intake → enrich → send.<channel> → delivery events: the stages that consume a
# notification's records in a worker (the send stage writes its delivered status; the
# delivery events stage takes two events a notification, queued and delivered).
NOTIFYHUB_HOPS = 4
DEFAULT_RELAY_HOPS = NOTIFYHUB_HOPS
FAUST_RELAY_SCRIPT = Path(__file__).resolve().with_name("faust_relay.py")
FAUST_RELAY_MODES = ("stock", "notifyhub")
# What the Faust relay logs at: with "warn" Faust's terminal spinner sets the root logger
# to DEBUG, and every library's debug line would cost CPU counted in its figures.
FAUST_RELAY_LOG_LEVEL = "info"
# /proc/<pid>/stat fields 14 and 15 (utime, stime), counted from field 3, the first after
# the process name, which may hold spaces and is read past.
PROC_STAT_UTIME_INDEX = 14 - 3
PROC_STAT_STIME_INDEX = 15 - 3
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
FINAL_STATUS_NAMES = sorted(status.value for status in FINAL_STATUSES)
# CPU is reported per this many notifications (or relayed records).
CPU_PER_RECORDS = 1000
LOG_TAIL_LINES = 40
PERCENTILES = (50, 95, 99)
KIB_PER_MIB = 1024
MS_PER_S = 1000


def log(message: str) -> None:
    print(f"topology: {message}", file=sys.stderr, flush=True)


class DeploymentFailed(RuntimeError):
    """The benchmark deployment could not run; the message says what, with log tails."""


# ---------------------------------------------------------------- the stack


@dataclass(frozen=True)
class Services:
    kafka_bootstrap_servers: str
    database_url: str
    redis_url: str

    def environ(self) -> dict[str, str]:
        return dict(zip(SERVICE_VARIABLES, self.addresses(), strict=True))

    def addresses(self) -> tuple[str, str, str]:
        return self.kafka_bootstrap_servers, self.database_url, self.redis_url

    def endpoints(self) -> list[tuple[str, str | None, int]]:
        """Each service's (name, host, port), every Kafka bootstrap server included."""
        found: list[tuple[str, str | None, int]] = []
        for server in self.kafka_bootstrap_servers.split(","):
            parts = urlsplit(f"//{server.strip()}")
            found.append(("Kafka", parts.hostname, parts.port or 9092))
        database = urlsplit(self.database_url)
        found.append(("PostgreSQL", database.hostname, database.port or 5432))
        cache = urlsplit(self.redis_url)
        found.append(("Redis", cache.hostname, cache.port or 6379))
        return found


def find_services() -> Services:
    """The environment's addresses, else those of the native stack (`stack.sh env`)."""
    if all(os.environ.get(name) for name in SERVICE_VARIABLES):
        return Services(*(os.environ[name] for name in SERVICE_VARIABLES))
    printed = subprocess.run(
        [str(STACK_SCRIPT), "env"],
        capture_output=True,
        text=True,
        timeout=STACK_ENV_TIMEOUT_SECONDS,
        check=True,
    ).stdout
    defaults = dict(line.split("=", 1) for line in printed.split())
    return Services(*(os.environ.get(name) or defaults[name] for name in SERVICE_VARIABLES))


async def unreachable(services: Services) -> list[str]:
    """The services that do not accept a TCP connection, as 'name host:port'."""
    missing = []
    for name, host, port in services.endpoints():
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), CONNECT_TIMEOUT_SECONDS
            )
        except (OSError, TimeoutError):
            missing.append(f"{name} {host}:{port}")
            continue
        writer.close()
        await writer.wait_closed()
    return missing


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------- the deployment


def proc_status_kib(pid: int, field_name: str) -> int | None:
    """A ``/proc/<pid>/status`` memory field (``VmRSS``, ``VmHWM``) in KiB; None once gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    return None


@dataclass
class WorkerProcess:
    """One ``notifyhub worker`` of the benchmark deployment (or a Faust relay's worker),
    and its memory figures."""

    index: int
    process: asyncio.subprocess.Process
    url: str
    log_path: Path
    max_sampled_rss_kib: int = 0
    peak_rss_kib: int | None = None
    # What messages call it; "worker <index>" unless given.
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or f"worker {self.index}"

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def describe_failure(self, what: str) -> str:
        return f"{self.name} {what}; last lines of {self.log_path}:\n{self.log_tail()}"

    def sample_rss(self) -> None:
        rss = proc_status_kib(self.process.pid, "VmRSS")
        if rss is not None:
            self.max_sampled_rss_kib = max(self.max_sampled_rss_kib, rss)

    async def stop(self) -> None:
        """Record the peak RSS, then SIGTERM; SIGKILL if it has not exited in time."""
        if self.process.returncode is not None:
            return
        self.peak_rss_kib = proc_status_kib(self.process.pid, "VmHWM")
        try:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), WORKER_STOP_TIMEOUT_SECONDS)
        except ProcessLookupError:
            return
        except TimeoutError:
            log(f"{self.name} did not stop in {WORKER_STOP_TIMEOUT_SECONDS}s; killing it")
            self.process.kill()
            await self.process.wait()


async def migrate(services: Services) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifyhub.cli.main",
        "migrate",
        env={**os.environ, "DATABASE_URL": services.database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), MIGRATE_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise DeploymentFailed(f"notifyhub migrate took more than {MIGRATE_TIMEOUT_SECONDS}s") from None
    if process.returncode != 0:
        raise DeploymentFailed(f"notifyhub migrate failed:\n{output.decode(errors='replace')}")


async def create_tenant(database_url: str, name: str) -> uuid.UUID:
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=1, command_timeout=SERVICE_TIMEOUT_SECONDS
    )
    try:
        return cast(uuid.UUID, (await tenants.create_tenant(pool, name))["id"])
    finally:
        await pool.close()


# --provider: the local server speaking the provider's protocol (run as a module of the
# test suite, in its own process) and the channel it sends.
PROVIDER_SERVERS = {
    "ses": ("tests.support.servers.ses", "email"),
    "smtp": ("tests.support.servers.smtp", "email"),
    "twilio": ("tests.support.servers.twilio", "sms"),
}


async def start_provider_server(module: str) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """Start a local provider server; it prints ``NAME=value`` lines, then a blank line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    env: dict[str, str] = {}
    async with asyncio.timeout(WORKER_READY_TIMEOUT_SECONDS):
        while line := (await process.stdout.readline()).decode().strip():
            name, _, value = line.partition("=")
            env[name] = value
    if not env:
        raise DeploymentFailed(f"{module} printed no settings (exit code {process.returncode})")
    return process, env


def provider_settings(provider: str, channel: str, server_env: dict[str, str]) -> dict[str, str]:
    """What points the workers' channel at the provider (the sink records every channel)."""
    if provider == "sink":
        return {"NOTIFYHUB_SINK_CHANNELS": "all"}
    return {
        **server_env,
        "NOTIFYHUB_SINK_CHANNELS": "",
        f"NOTIFYHUB_{channel.upper()}_PROVIDERS": provider,
    }


async def start_process(
    command: Sequence[str], env: dict[str, str], home: Path
) -> tuple[asyncio.subprocess.Process, Path]:
    """Start a process in ``home`` (a directory of its own), its output in ``home/worker.log``."""
    log_path = home / "worker.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            cwd=home,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
    return process, log_path


async def start_workers(
    services: Services,
    name: str,
    workdir: Path,
    indexes: range,
    partitions: int,
    delivery: dict[str, str],
) -> list[WorkerProcess]:
    """Start some of the deployment's workers, each with its own port, data directory and log."""
    workers = []
    for index in indexes:
        port = free_port()
        home = workdir / f"worker-{index}"
        home.mkdir()
        env = {
            **os.environ,
            **services.environ(),
            "NOTIFYHUB_APP_ID": name,
            "NOTIFYHUB_TOPIC_PREFIX": name,
            "NOTIFYHUB_WEB_HOST": "127.0.0.1",
            "NOTIFYHUB_WEB_PORT": str(port),
            "NOTIFYHUB_DATA_DIR": str(home / "data"),
            **delivery,
            "NOTIFYHUB_TOPIC_PARTITIONS": str(partitions),
            "NOTIFYHUB_TABLE_STANDBY_REPLICAS": "0",
            "NOTIFYHUB_LOG_LEVEL": "warning",
            # The bench's throwaway deployment: the shipped development secrets will do.
            "NOTIFYHUB_DEVELOPMENT": "true",
        }
        command = [sys.executable, "-m", "notifyhub.cli.main", "worker"]
        process, log_path = await start_process(command, env, home)
        workers.append(WorkerProcess(index, process, f"http://127.0.0.1:{port}", log_path))
    return workers


async def is_ready(session: aiohttp.ClientSession, worker: WorkerProcess) -> bool:
    try:
        async with session.get(f"{worker.url}/readyz") as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def wait_until_ready(workers: list[WorkerProcess]) -> None:
    """Until every worker answers /readyz with 200 at once (a join rebalances the others)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WORKER_READY_TIMEOUT_SECONDS
    timeout = aiohttp.ClientTimeout(total=CONNECT_TIMEOUT_SECONDS)
    ready = [False] * len(workers)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while loop.time() < deadline:
            for worker in workers:
                if worker.process.returncode is not None:
                    raise DeploymentFailed(
                        worker.describe_failure(f"exited ({worker.process.returncode}) during start-up")
                    )
            ready = await asyncio.gather(*(is_ready(session, worker) for worker in workers))
            if all(ready):
                return
            await asyncio.sleep(POLL_SECONDS)
        late = [w for w, r in zip(workers, ready, strict=True) if not r]
    raise DeploymentFailed(
        "\n".join(w.describe_failure(f"not ready after {WORKER_READY_TIMEOUT_SECONDS}s") for w in late)
    )


async def sample_rss(workers: list[WorkerProcess]) -> None:
    while True:
        for worker in workers:
            worker.sample_rss()
        await asyncio.sleep(RSS_SAMPLE_SECONDS)


# ---------------------------------------------------------------- load and arrivals


@dataclass(frozen=True)
class OutgoingMessage:
    id: str
    key: bytes
    value: bytes


def intake_messages(
    tenant_id: uuid.UUID, channel: str, count: int, recipients: int
) -> list[OutgoingMessage]:
    """``count`` intake messages (v1), cycling over ``recipients`` ids, keyed by recipient."""
    messages = []
    for n in range(count):
        body = request_body(channel, n % recipients)
        body.update(v=1, id=str(uuid.uuid4()), tenant_id=str(tenant_id))
        messages.append(
            OutgoingMessage(body["id"], body["recipient_id"].encode(), json.dumps(body).encode())
        )
    return messages


@dataclass
class Production:
    """When each message was handed to the producer, how late the latest was for its slot
    of the schedule (0 for a burst), and when the last was acknowledged."""

    sent_at: dict[str, float]
    first_sent: float
    all_acked: float
    behind_schedule_max: float

    @property
    def rate(self) -> float:
        return len(self.sent_at) / max(self.all_acked - self.first_sent, 1e-9)


async def produce_load(
    producer: AIOKafkaProducer, topic: str, messages: list[OutgoingMessage], rate: float | None
) -> Production:
    """Hand every message to the producer, as fast as it takes them (``rate`` None) or each
    at its slot of a fixed schedule of ``rate`` per second (never earlier, and without
    waiting for acks in between: the open loop); then wait for the acks."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    behind = 0.0
    sent_at: dict[str, float] = {}
    acks = []
    for n, message in enumerate(messages):
        if rate is not None:
            due = start + n / rate
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            behind = max(behind, loop.time() - due)
        # time.time(), not a monotonic clock: arrivals are stamped with the wall clock
        # (updated_at is the worker's, on this machine).
        sent_at[message.id] = time.time()
        acks.append(await producer.send(topic, value=message.value, key=message.key))
    await asyncio.wait_for(asyncio.gather(*acks), SERVICE_TIMEOUT_SECONDS)
    return Production(sent_at, min(sent_at.values()), time.time(), behind)


@dataclass
class Arrivals:
    """What reached the end of a pipeline: the first arrival time of each id and the
    copies, and the ids that ended otherwise (NotifyHub's other final statuses)."""

    expected: frozenset[str]
    first: dict[str, float] = field(default_factory=dict)
    copies: Counter[str] = field(default_factory=Counter)
    ended_otherwise: dict[str, str] = field(default_factory=dict)
    unexpected: int = 0
    all_in: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, message_id: str, at: float) -> None:
        if message_id not in self.expected:
            self.unexpected += 1
            return
        self.copies[message_id] += 1
        self.first.setdefault(message_id, at)
        self._check_complete()

    def end_otherwise(self, message_id: str, status: str) -> None:
        self.ended_otherwise[message_id] = status
        self._check_complete()

    def _check_complete(self) -> None:
        if len(self.first) + len(self.ended_otherwise) >= len(self.expected):
            self.all_in.set()

    def pending(self) -> list[str]:
        """The expected ids that neither arrived nor ended otherwise."""
        return [i for i in self.expected if i not in self.first and i not in self.ended_otherwise]

    @property
    def duplicates(self) -> int:
        return sum(1 for copies in self.copies.values() if copies > 1)


async def wait_for_arrivals(
    label: str, arrivals: Arrivals, deadline: float, still_running: Callable[[], bool]
) -> None:
    """Until every message arrived or ended, the deadline (loop time) passed or nothing runs
    any more; returns as soon as the last one is in."""
    loop = asyncio.get_running_loop()
    last_report, last_count = loop.time(), 0
    while not arrivals.all_in.is_set() and loop.time() < deadline and still_running():
        try:
            await asyncio.wait_for(arrivals.all_in.wait(), min(POLL_SECONDS, deadline - loop.time()))
        except TimeoutError:
            pass
        now = loop.time()
        if now - last_report >= PROGRESS_SECONDS:
            count = len(arrivals.first)
            rate = (count - last_count) / (now - last_report)
            log(
                f"{label}: {count}/{len(arrivals.expected)} arrived "
                f"({rate:.0f}/s lately), {max(deadline - now, 0):.0f}s left"
            )
            last_report, last_count = now, count


def stage_figures(arrivals: Arrivals, production: Production) -> dict[str, Any]:
    """Throughput, latency percentiles (ms) and missing ids of one run."""
    latencies = sorted(at - production.sent_at[message_id] for message_id, at in arrivals.first.items())
    latency_ms: dict[str, float | None] = {
        f"p{p}": nearest_rank(latencies, p) * MS_PER_S if latencies else None for p in PERCENTILES
    }
    latency_ms["max"] = latencies[-1] * MS_PER_S if latencies else None
    elapsed = max(arrivals.first.values()) - production.first_sent if arrivals.first else None
    return {
        "delivered": len(arrivals.first),
        "missing": len(arrivals.expected) - len(arrivals.first),
        "unexpected": arrivals.unexpected,
        "produce_rate_per_s": production.rate,
        "behind_schedule_max_ms": production.behind_schedule_max * MS_PER_S,
        "elapsed_s": elapsed,
        "throughput_per_s": len(arrivals.first) / elapsed if elapsed else None,
        "latency_ms": latency_ms,
    }


def load_producer(services: Services) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=services.kafka_bootstrap_servers,
        acks="all",
        linger_ms=PRODUCER_LINGER_MS,
        request_timeout_ms=SERVICE_TIMEOUT_SECONDS * 1000,
    )


# ---------------------------------------------------------------- CPU


def cpu_ticks(pid: int) -> int | None:
    """A process's utime + stime in clock ticks; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return int(fields[PROC_STAT_UTIME_INDEX]) + int(fields[PROC_STAT_STIME_INDEX])


def cpu_seconds(pids: list[int], before: list[int | None]) -> float | None:
    """The CPU the processes used since ``before`` (their ``cpu_ticks`` then); None if
    one of them is gone, as its CPU is then unknown."""
    after = [cpu_ticks(pid) for pid in pids]
    if None in before or None in after:
        return None
    # Neither holds a None (checked above).
    ended, started = cast(list[int], after), cast(list[int], before)
    return sum(a - b for a, b in zip(ended, started, strict=True)) / CLOCK_TICKS_PER_SECOND


def per_records(seconds: float | None, records: int) -> float | None:
    return seconds * CPU_PER_RECORDS / records if seconds is not None and records else None


# ---------------------------------------------------------------- NotifyHub


class StatusFollower:
    """Follows the bench tenant's notifications in PostgreSQL into ``arrivals``: an
    expected notification arrives when its row is ``delivered`` (at its ``updated_at``),
    or ends otherwise at another final status.

    Each poll asks for the new final rows (a keyset: ``updated_at`` at or past the latest
    seen, so only those come back), or for the pending ids by primary key once few are
    left (``PROBE_MAX_IDS``) and every ``PROBE_EVERY_SECONDS``. The keyset can miss a
    row whose status committed after a later ``updated_at`` had been read (the time is
    the event's, not the commit's, and workers commit batches concurrently); the lookup
    by primary key misses nothing, and one ends every run.
    """

    def __init__(self, pool: asyncpg.Pool, tenant_id: uuid.UUID, arrivals: Arrivals) -> None:
        self.pool = pool
        self.tenant_id = tenant_id
        self.arrivals = arrivals
        self.latest_seen = datetime.fromtimestamp(0, UTC)  # the latest updated_at read

    async def follow(self) -> None:
        loop = asyncio.get_running_loop()
        last_probe = loop.time()
        while not self.arrivals.all_in.is_set():
            pending = self.arrivals.pending()
            if len(pending) <= PROBE_MAX_IDS or loop.time() - last_probe >= PROBE_EVERY_SECONDS:
                await self.poll_pending(pending)
                last_probe = loop.time()
            else:
                await self.poll_recent()
            await asyncio.sleep(POLL_SECONDS)

    async def poll_recent(self) -> None:
        rows = await self.pool.fetch(
            "SELECT id::text AS id, status, updated_at FROM notifications "
            "WHERE tenant_id = $1 AND status = ANY($2::text[]) AND updated_at >= $3",
            self.tenant_id,
            FINAL_STATUS_NAMES,
            self.latest_seen,
        )
        self._take(rows)

    async def poll_pending(self, pending: list[str]) -> None:
        rows = await self.pool.fetch(
            "SELECT id::text AS id, status, updated_at FROM notifications "
            "WHERE id = ANY($1::uuid[]) AND tenant_id = $2 AND status = ANY($3::text[])",
            pending,
            self.tenant_id,
            FINAL_STATUS_NAMES,
        )
        self._take(rows)

    def _take(self, rows: list[asyncpg.Record]) -> None:
        arrivals = self.arrivals
        for row in rows:
            message_id = row["id"]
            if message_id in arrivals.first or message_id in arrivals.ended_otherwise:
                continue  # read again: the keyset's bound is inclusive
            if row["status"] == Status.DELIVERED:
                arrivals.record(message_id, row["updated_at"].timestamp())
            else:
                arrivals.end_otherwise(message_id, row["status"])
            self.latest_seen = max(self.latest_seen, row["updated_at"])

    async def not_final_statuses(self) -> dict[str, int]:
        """How many pending notifications have each status (``absent``: no row at all)."""
        pending = self.arrivals.pending()
        rows = await self.pool.fetch(
            "SELECT status, count(*) AS n FROM notifications "
            "WHERE id = ANY($1::uuid[]) AND tenant_id = $2 GROUP BY status",
            pending,
            self.tenant_id,
        )
        statuses = {row["status"]: row["n"] for row in rows}
        absent = len(pending) - sum(statuses.values())
        return {**statuses, "absent": absent} if absent else statuses


async def sink_duplicates(client: redis.Redis, key: str) -> int:
    """How many notification ids the sink's list holds more than once."""
    copies: Counter[str] = Counter()
    length = await client.llen(key)
    for start in range(0, length, SINK_READ_CHUNK):
        for raw in await client.lrange(key, start, start + SINK_READ_CHUNK - 1):
            copies[json.loads(raw)["notification_id"]] += 1
    return sum(1 for n in copies.values() if n > 1)


async def delivery_log_duplicates(pool: asyncpg.Pool, expected: list[str]) -> int:
    """How many notifications have more than one ``delivered`` row in the delivery log (a
    real provider records nothing we can read: each row is one of its answers)."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM (SELECT notification_id FROM delivery_log "
        "WHERE notification_id = ANY($1::uuid[]) AND status = 'delivered' "
        "GROUP BY notification_id HAVING count(*) > 1) AS repeated",
        expected,
    )
    return count


async def run_notifyhub(
    args: argparse.Namespace,
    services: Services,
    name: str,
    workers: list[WorkerProcess],
    messages: list[OutgoingMessage],
    tenant_id: uuid.UUID,
) -> dict[str, Any]:
    """Produce the load to intake and follow PostgreSQL until every notification is final
    or time ran out; duplicates from the sink (or, for a real provider, the delivery log)."""
    loop = asyncio.get_running_loop()
    client = redis.Redis.from_url(
        services.redis_url,
        socket_timeout=SERVICE_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
    )
    producer = load_producer(services)
    # A pool, though of one connection: it cleans up after a query cancelled with the follower.
    pool = await asyncpg.create_pool(
        services.database_url, min_size=1, max_size=1, command_timeout=SERVICE_TIMEOUT_SECONDS
    )
    arrivals = Arrivals(frozenset(message.id for message in messages))
    follower = StatusFollower(pool, tenant_id, arrivals)
    reader: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(producer.start(), SERVICE_TIMEOUT_SECONDS)
        # Started first: in an open loop the first notifications are delivered while
        # the rest are still being produced.
        reader = asyncio.create_task(follower.follow())
        pids = [worker.process.pid for worker in workers]
        cpu_before = [cpu_ticks(pid) for pid in pids]
        log(f"producing {len(messages)} messages to {name}.intake")
        production = await produce_load(producer, f"{name}.intake", messages, args.rate)
        log(f"produced at {production.rate:.0f}/s; waiting for PostgreSQL to say delivered")

        def still_running() -> bool:
            if reader.done():
                return False
            return any(worker.process.returncode is None for worker in workers)

        await wait_for_arrivals("NotifyHub", arrivals, loop.time() + args.timeout, still_running)
        worker_cpu = cpu_seconds(pids, cpu_before)
        if reader.done() and reader.exception() is not None:
            raise DeploymentFailed(f"following PostgreSQL failed: {reader.exception()!r}")
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        for worker in workers:
            if worker.process.returncode is not None:
                log(worker.describe_failure(f"exited ({worker.process.returncode}) during the run"))
        await follower.poll_pending(arrivals.pending())
        figures = stage_figures(arrivals, production)
        not_final = await follower.not_final_statuses()
        figures.update(
            not_final=sum(not_final.values()),
            not_final_statuses=not_final,
            ended_otherwise=dict(Counter(arrivals.ended_otherwise.values())),
            cpu_of="workers",
            cpu_s=worker_cpu,
            cpu_s_per_1000=per_records(worker_cpu, len(arrivals.first)),
        )
        if args.provider == "sink":
            figures["duplicates"] = await sink_duplicates(client, sink_key(name))
            figures["sink_repeats"] = int(await client.get(sink_keys(name).repeats) or 0)
        else:
            figures["duplicates"] = await delivery_log_duplicates(pool, sorted(arrivals.expected))
        return figures
    finally:
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await producer.stop()
        await client.aclose()
        await pool.close()


# ---------------------------------------------------------------- the relay baselines


def relay_consumer(services: Services, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=services.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=SERVICE_TIMEOUT_SECONDS * 1000,
    )


async def relay_hop(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, destination: str) -> None:
    """Decode, re-encode and forward each message; commit only what the broker has taken."""
    while True:
        batches = await consumer.getmany(timeout_ms=100)
        acks = []
        for records in batches.values():
            for record in records:
                value = json.dumps(json.loads(record.value)).encode()
                acks.append(await producer.send(destination, value=value, key=record.key))
        if acks:
            # At-least-once, like the pipeline: the batch's output is acknowledged before
            # its input offsets are committed.
            await asyncio.gather(*acks)
            await consumer.commit()


async def drain(consumer: AIOKafkaConsumer, arrivals: Arrivals) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=100)
        now = time.time()
        for records in batches.values():
            for record in records:
                arrivals.record(json.loads(record.value)["id"], now)


async def wait_for_assignment(
    consumers: list[AIOKafkaConsumer], tasks: list[asyncio.Task[None]]
) -> None:
    """Until every consumer joined its group, so the load does not wait for the joins."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SERVICE_TIMEOUT_SECONDS
    while not all(consumer.assignment() for consumer in consumers):
        for task in tasks:
            if task.done():
                task.result()
        if loop.time() > deadline:
            raise DeploymentFailed(f"relay consumers had no partitions after {SERVICE_TIMEOUT_SECONDS}s")
        await asyncio.sleep(0.1)


def relay_topics(name: str, hops: int) -> list[str]:
    return [f"{name}-relay.{hop}" for hop in range(hops + 1)]


def faust_relay_prefix(name: str, mode: str) -> str:
    return f"{name}-{mode}"


def faust_relay_topics(prefix: str, hops: int) -> list[str]:
    """The Faust relay's topics, as ``bench/faust_relay.py`` names them."""
    return [f"{prefix}-frelay.{hop}" for hop in range(hops + 1)]


async def measure_relay(
    label: str,
    args: argparse.Namespace,
    services: Services,
    topics: list[str],
    drain_group: str,
    messages: list[OutgoingMessage],
    cpu_of: str,
    cpu_pid: int,
    still_running: Callable[[], bool],
) -> dict[str, Any]:
    """Produce the load to a running relay's first topic and drain its last with a plain
    consumer; the figures, CPU being process ``cpu_pid``'s (``cpu_of`` says what it is)."""
    loop = asyncio.get_running_loop()
    final = relay_consumer(services, topics[-1], drain_group)
    producer = load_producer(services)
    drainer: asyncio.Task[None] | None = None
    started: list[AIOKafkaConsumer | AIOKafkaProducer] = []
    try:
        for client in (final, producer):
            await asyncio.wait_for(client.start(), SERVICE_TIMEOUT_SECONDS)
            started.append(client)
        # Known before the load: the first messages arrive while it is still being produced.
        arrivals = Arrivals(frozenset(message.id for message in messages))
        drainer = asyncio.create_task(drain(final, arrivals))
        await wait_for_assignment([final], [drainer])

        cpu_before = [cpu_ticks(cpu_pid)]
        log(f"{label}: producing {len(messages)} messages to {topics[0]}")
        production = await produce_load(producer, topics[0], messages, args.rate)
        log(f"{label}: produced at {production.rate:.0f}/s; waiting for {topics[-1]}")
        await wait_for_arrivals(
            label, arrivals, loop.time() + args.timeout, lambda: still_running() and not drainer.done()
        )
        cpu = cpu_seconds([cpu_pid], cpu_before)
        if drainer.done():
            drainer.result()
        return {
            "hops": args.relay_hops,
            **stage_figures(arrivals, production),
            "duplicates": arrivals.duplicates,
            "cpu_of": cpu_of,
            "cpu_s": cpu,
            "cpu_s_per_1000": per_records(cpu, len(arrivals.first)),
        }
    finally:
        if drainer is not None:
            drainer.cancel()
            await asyncio.gather(drainer, return_exceptions=True)
        for client in reversed(started):
            await client.stop()


async def run_relay(
    args: argparse.Namespace, services: Services, name: str, messages: list[OutgoingMessage]
) -> dict[str, Any]:
    """The same load through ``--relay-hops`` plain consume→produce hops in this process;
    the same figures, CPU this process's (the load producer and the drain included)."""
    topics = relay_topics(name, args.relay_hops)
    hops = [
        relay_consumer(services, topic, f"{name}-relay-{hop}") for hop, topic in enumerate(topics[:-1])
    ]
    relay_producer = load_producer(services)
    tasks: list[asyncio.Task[None]] = []
    started: list[AIOKafkaConsumer | AIOKafkaProducer] = []
    try:
        for client in (*hops, relay_producer):
            await asyncio.wait_for(client.start(), SERVICE_TIMEOUT_SECONDS)
            started.append(client)
        tasks = [
            asyncio.create_task(relay_hop(hop, relay_producer, destination))
            for hop, destination in zip(hops, topics[1:], strict=True)
        ]
        await wait_for_assignment(hops, tasks)
        figures = await measure_relay(
            "relay",
            args,
            services,
            topics,
            f"{name}-relay-final",
            messages,
            "this process: relay hops, load producer and drain",
            os.getpid(),
            lambda: not any(task.done() for task in tasks),
        )
        for task in tasks:
            if task.done():
                task.result()
        return figures
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in reversed(started):
            await client.stop()


async def run_faust_relay(
    args: argparse.Namespace,
    services: Services,
    name: str,
    workdir: Path,
    mode: str,
    messages: list[OutgoingMessage],
) -> dict[str, Any]:
    """The same load through ``bench/faust_relay.py`` in ``mode``, a worker process of its
    own; the same figures, CPU and peak RSS that worker's."""
    prefix = faust_relay_prefix(name, mode)
    topics = faust_relay_topics(prefix, args.relay_hops)
    home = workdir / f"faust-relay-{mode}"
    home.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap_servers,
        "FAUST_RELAY_PREFIX": prefix,
        "FAUST_RELAY_HOPS": str(args.relay_hops),
        "FAUST_RELAY_MODE": mode,
        "FAUST_RELAY_PARTITIONS": str(args.partitions),
        "FAUST_RELAY_PORT": str(port),
        "FAUST_RELAY_DATADIR": str(home / "data"),
    }
    command = [sys.executable, str(FAUST_RELAY_SCRIPT), "worker", "-l", FAUST_RELAY_LOG_LEVEL]
    process, log_path = await start_process(command, env, home)
    relay = WorkerProcess(
        0, process, f"http://127.0.0.1:{port}", log_path, label=f"{mode} Faust relay worker"
    )
    label = f"Faust relay ({mode})"
    try:
        log(f"{label}: waiting for its worker to be ready")
        await wait_until_ready([relay])
        figures = await measure_relay(
            label,
            args,
            services,
            topics,
            f"{prefix}-drain",
            messages,
            "relay worker",
            process.pid,
            lambda: process.returncode is None,
        )
        if process.returncode is not None:
            log(relay.describe_failure(f"exited ({process.returncode}) during the run"))
    finally:
        await relay.stop()
    figures["peak_rss_mib"] = None if relay.peak_rss_kib is None else relay.peak_rss_kib / KIB_PER_MIB
    return figures


# ---------------------------------------------------------------- clean-up


def admin_client(bootstrap: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=SERVICE_TIMEOUT_SECONDS * 1000
    )


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = admin_client(bootstrap)
    await asyncio.wait_for(admin.start(), SERVICE_TIMEOUT_SECONDS)
    try:
        topics = [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        await asyncio.wait_for(admin.create_topics(topics), SERVICE_TIMEOUT_SECONDS)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic named ``prefix…``: NotifyHub's, Faust's changelogs and the relay's."""
    admin = admin_client(bootstrap)
    await asyncio.wait_for(admin.start(), SERVICE_TIMEOUT_SECONDS)
    try:
        names = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if names:
            await asyncio.wait_for(
                admin.delete_topics(names, timeout_ms=SERVICE_TIMEOUT_SECONDS * 1000),
                SERVICE_TIMEOUT_SECONDS,
            )
        return names
    finally:
        await admin.close()


async def clean_up(services: Services, name: str) -> None:
    """Best effort: a failure is reported and the rest still runs."""
    try:
        deleted = await delete_topics(services.kafka_bootstrap_servers, name)
        log(f"deleted {len(deleted)} topics named {name}*")
    except Exception as exc:
        log(f"could not delete the topics named {name}*: {exc!r}")
    client = redis.Redis.from_url(
        services.redis_url,
        socket_timeout=SERVICE_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
    )
    try:
        await client.delete(*sink_keys(name))
    except Exception as exc:
        log(f"could not delete the sink's Redis keys {sink_keys(name)}: {exc!r}")
    finally:
        await client.aclose()


# ---------------------------------------------------------------- the run


async def run(args: argparse.Namespace, services: Services) -> dict[str, Any]:
    name = f"bench-{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix=f"notifyhub-{name}-"))
    log(f"deployment {name}; worker logs under {workdir}")
    workers: list[WorkerProcess] = []
    sampler: asyncio.Task[None] | None = None
    provider_server: asyncio.subprocess.Process | None = None
    succeeded = False
    try:
        server_env: dict[str, str] = {}
        if args.provider != "sink":
            provider_server, server_env = await start_provider_server(PROVIDER_SERVERS[args.provider][0])
            log(f"local {args.provider} server: {server_env}")
        await migrate(services)
        # Every relay topic now rather than just before its relay runs: for a while after
        # a topic is created the broker answers NotLeaderForPartition and clients retry,
        # which would land in the relay's figures. (The Faust relay's last topic has no
        # agent, so Faust would not create it anyway.)
        topics = [] if args.skip_relay else relay_topics(name, args.relay_hops)
        for mode in args.faust_relay:
            topics += faust_relay_topics(faust_relay_prefix(name, mode), args.relay_hops)
        if topics:
            await create_topics(services.kafka_bootstrap_servers, topics, args.partitions)
        tenant_id = await create_tenant(services.database_url, name)
        messages = intake_messages(tenant_id, args.channel, args.count, args.recipients)
        delivery = provider_settings(args.provider, args.channel, server_env)
        # The first worker alone: it creates the topics, and a worker that joins while they
        # are missing gets none of their partitions until the next rebalance.
        workers = await start_workers(services, name, workdir, range(1), args.partitions, delivery)
        sampler = asyncio.create_task(sample_rss(workers))
        log(f"waiting for {args.workers} worker(s) to be ready")
        await wait_until_ready(workers)
        workers += await start_workers(
            services, name, workdir, range(1, args.workers), args.partitions, delivery
        )
        await wait_until_ready(workers)
        notifyhub = await run_notifyhub(args, services, name, workers, messages, tenant_id)
        # The baselines run alone, on the cores the workers had.
        await asyncio.gather(*(worker.stop() for worker in workers))
        relay = None if args.skip_relay else await run_relay(args, services, name, messages)
        faust_relays = {
            mode: await run_faust_relay(args, services, name, workdir, mode, messages)
            for mode in args.faust_relay
        }
        succeeded = True
    finally:
        if sampler is not None:
            sampler.cancel()
        await asyncio.gather(*(worker.stop() for worker in workers))
        if provider_server is not None and provider_server.returncode is None:
            provider_server.terminate()
            await provider_server.wait()
        await clean_up(services, name)
        if succeeded:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"worker logs kept under {workdir}")
    return report(args, name, tenant_id, notifyhub, workers, relay, faust_relays)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


# Report keys and titles of the stages, in the order they run.
STAGE_TITLES = {
    "notifyhub": "NotifyHub",
    "relay": "plain relay",
    "faust_stock": "Faust stock",
    "faust_notifyhub": "Faust notifyhub",
}
# NotifyHub against each baseline, and what our Faust changes leave of Faust's cost.
RATIO_PAIRS = (
    ("notifyhub", "relay"),
    ("notifyhub", "faust_stock"),
    ("notifyhub", "faust_notifyhub"),
    ("faust_notifyhub", "faust_stock"),
)
# The plain relay's CPU is this process's, load producer and drain included: not a
# figure to divide a worker's by.
CPU_NOT_COMPARABLE = frozenset({"relay"})


def stages_run(
    notifyhub: dict[str, Any], relay: dict[str, Any] | None, faust_relays: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The figures of each stage that ran, by ``STAGE_TITLES`` key, in order."""
    stages = {"notifyhub": notifyhub, "relay": relay}
    stages.update({f"faust_{mode}": figures for mode, figures in faust_relays.items()})
    return {key: figures for key, figures in stages.items() if figures is not None}


def report(
    args: argparse.Namespace,
    name: str,
    tenant_id: uuid.UUID,
    notifyhub: dict[str, Any],
    workers: list[WorkerProcess],
    relay: dict[str, Any] | None,
    faust_relays: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The result as plain data: the table and ``--json`` show the same numbers."""
    peaks = [None if w.peak_rss_kib is None else w.peak_rss_kib / KIB_PER_MIB for w in workers]
    known_peaks = [peak for peak in peaks if peak is not None]
    stages = stages_run(notifyhub, relay, faust_relays)
    ratios = {
        f"{top}/{bottom}": {
            "throughput": ratio(stages[top]["throughput_per_s"], stages[bottom]["throughput_per_s"]),
            "cpu_s_per_1000": None
            if CPU_NOT_COMPARABLE & {top, bottom}
            else ratio(stages[top]["cpu_s_per_1000"], stages[bottom]["cpu_s_per_1000"]),
        }
        for top, bottom in RATIO_PAIRS
        if top in stages and bottom in stages
    }
    load = (
        {"mode": "burst"}
        if args.rate is None
        else {"mode": "open loop", "rate_per_s": args.rate, "duration_s": args.duration}
    )
    return {
        "deployment": name,
        "count": args.count,
        "load": load,
        "workers": args.workers,
        "partitions": args.partitions,
        "channel": args.channel,
        "provider": args.provider,
        "recipients": args.recipients,
        "notifyhub_hops": NOTIFYHUB_HOPS,
        "relay_hops": args.relay_hops,
        "notifyhub": notifyhub,
        "worker_peak_rss_mib": peaks,
        "worker_peak_rss_mib_max": max(known_peaks) if known_peaks else None,
        "worker_sampled_rss_mib_max": [w.max_sampled_rss_kib / KIB_PER_MIB for w in workers],
        "relay": relay,
        "faust_relay": faust_relays,
        "ratios": ratios or None,
        "kept_in_postgresql": f"tenant {name} ({tenant_id}) and its notifications",
    }


def format_table(summary: dict[str, Any]) -> str:
    def duration(ms: float | None) -> str:
        if ms is None:
            return "-"
        return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"

    def number(value: float | None, unit: str = "") -> str:
        return "-" if value is None else f"{value:,.1f}{unit}"

    def cpu(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    def times(value: float | None) -> str:
        return "-" if value is None else f"{value:.3g}"

    def mib(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} MiB"

    ours = summary["notifyhub"]
    stages = stages_run(ours, summary["relay"], summary["faust_relay"])
    load = summary["load"]
    if load["mode"] == "burst":
        load_text = f"a burst of {summary['count']}"
    else:
        load_text = (
            f"open loop, {load['rate_per_s']:g}/s for {load['duration_s']:g} s ({summary['count']})"
        )
    sampled = summary["worker_sampled_rss_mib_max"]
    facts = [
        ("deployment", summary["deployment"]),
        ("load", load_text),
        (
            "notifications",
            f"{summary['count']} on {summary['channel']} via {summary['provider']}, "
            f"{summary['recipients']} recipients",
        ),
        ("workers", f"{summary['workers']}, {summary['partitions']} partitions per topic"),
        (
            "hops",
            f"NotifyHub {summary['notifyhub_hops']} (intake → enrich → send, which writes "
            "delivered → delivery events)"
            + (f"; each relay {summary['relay_hops']}" if len(stages) > 1 else ""),
        ),
        ("worker peak RSS", ", ".join(mib(peak) for peak in summary["worker_peak_rss_mib"])),
        ("  max sampled RSS", ", ".join(mib(peak) for peak in sampled)),
    ]
    if ours["not_final"]:
        statuses = ", ".join(f"{count} {status}" for status, count in ours["not_final_statuses"].items())
        facts.append(("not final", statuses))
    if ours["ended_otherwise"]:
        ended = ", ".join(f"{count} {status}" for status, count in ours["ended_otherwise"].items())
        facts.append(("final, not delivered", ended))
    facts.append(("kept in PostgreSQL", summary["kept_in_postgresql"]))
    width = max(len(label) for label, _ in facts)
    lines = [f"{label:<{width}}  {value}" for label, value in facts]

    def table(rows: list[list[str]]) -> None:
        widths = [max(len(r[column]) for r in rows) for column in range(len(rows[0]))]
        lines.append("")
        for cells in rows:
            lines.append(
                "  ".join(
                    cell.ljust(widths[0]) if column == 0 else cell.rjust(widths[column])
                    for column, cell in enumerate(cells)
                ).rstrip()
            )

    rows = [["", *(STAGE_TITLES[key] for key in stages)]]

    def row(label: str, text: Callable[[dict[str, Any]], str]) -> None:
        rows.append([label, *(text(figures) for figures in stages.values())])

    row("produced at", lambda f: number(f["produce_rate_per_s"], "/s"))
    if load["mode"] != "burst":
        row("behind schedule (max)", lambda f: duration(f["behind_schedule_max_ms"]))
    row("throughput", lambda f: number(f["throughput_per_s"], "/s"))

    def latency(name: str) -> Callable[[dict[str, Any]], str]:
        return lambda f: duration(f["latency_ms"][name])

    for name in ("p50", "p95", "p99", "max"):
        row(f"latency {name}", latency(name))
    row("delivered", lambda f: str(f["delivered"]))
    row("missing", lambda f: str(f["missing"]))
    row("not final", lambda f: str(f["not_final"]) if "not_final" in f else "-")
    row("duplicates", lambda f: str(f["duplicates"]))
    if "sink_repeats" in ours:
        row("sink repeats", lambda f: str(f["sink_repeats"]) if "sink_repeats" in f else "-")
    row("CPU per 1,000", lambda f: cpu(f["cpu_s_per_1000"]) + ("*" if f is stages.get("relay") else ""))
    row(
        "peak RSS",
        lambda f: mib(summary["worker_peak_rss_mib_max"] if f is ours else f.get("peak_rss_mib")),
    )
    table(rows)
    if "relay" in stages:
        lines.append(f"* CPU of {stages['relay']['cpu_of']}; the others' is their worker processes'")

    if summary["ratios"]:
        ratio_rows = [["ratios", "throughput", "CPU per 1,000"]]
        for pair, values in summary["ratios"].items():
            top, bottom = pair.split("/")
            ratio_rows.append(
                [
                    f"{STAGE_TITLES[top]} / {STAGE_TITLES[bottom]}",
                    times(values["throughput"]),
                    times(values["cpu_s_per_1000"]),
                ]
            )
        table(ratio_rows)
    return "\n".join(lines)


def faust_relay_modes(text: str) -> tuple[str, ...]:
    """``--faust-relay``: comma-separated modes, or ``none``."""
    if text == "none":
        return ()
    modes = tuple(dict.fromkeys(mode.strip() for mode in text.split(",")))
    unknown = [mode for mode in modes if mode not in FAUST_RELAY_MODES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(FAUST_RELAY_MODES)} or none"
        )
    return modes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--count",
        type=positive_int,
        help=f"notifications to send in one burst (default {DEFAULT_COUNT})",
    )
    parser.add_argument(
        "--rate",
        type=positive_float,
        help="open loop: notifications per second, each at its slot of a fixed schedule "
        "(with --duration, instead of --count)",
    )
    parser.add_argument(
        "--duration", type=positive_float, help="open loop: seconds to produce at --rate"
    )
    parser.add_argument("--workers", type=positive_int, default=1, help="worker processes")
    parser.add_argument("--partitions", type=positive_int, default=8, help="partitions per topic")
    parser.add_argument(
        "--provider",
        default="sink",
        choices=("sink", *PROVIDER_SERVERS),
        help="where sends go: the sink, or a real provider client talking to its local server "
        "(which picks the channel)",
    )
    parser.add_argument("--channel", default="inapp", choices=("email", "sms", "push", "inapp"))
    parser.add_argument(
        "--recipients", type=positive_int, default=1000, help="distinct recipient ids to cycle over"
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=600.0,
        help="seconds to wait, once the last message is produced, for every one to arrive "
        "(for NotifyHub and again for each relay)",
    )
    parser.add_argument(
        "--relay-hops",
        type=positive_int,
        default=DEFAULT_RELAY_HOPS,
        help="consume→produce hops of each relay baseline",
    )
    parser.add_argument(
        "--faust-relay",
        type=faust_relay_modes,
        default=",".join(FAUST_RELAY_MODES),
        help="Faust relay baselines to run: stock, notifyhub, both (the default) or none",
    )
    parser.add_argument("--skip-relay", action="store_true", help="run no relay baseline at all")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    if (args.rate is None) != (args.duration is None):
        parser.error("--rate and --duration go together")
    if args.rate is not None:
        if args.count is not None:
            parser.error("--count is for a burst; an open loop sends --rate * --duration")
        args.count = round(args.rate * args.duration)
        if args.count < 1:
            parser.error("--rate * --duration must make at least one notification")
    elif args.count is None:
        args.count = DEFAULT_COUNT
    if args.skip_relay:
        args.faust_relay = ()
    if args.provider != "sink":
        args.channel = PROVIDER_SERVERS[args.provider][1]
    if args.channel == "sms" and args.recipients > 10**4:
        parser.error("--recipients may be at most 10000 for sms (the phone number's last digits)")
    return args


def usable_services(label: str) -> Services | None:
    """The services a bench may use: found, on loopback and answering; else None, with the
    reason printed (``label``: the bench's name)."""
    try:
        services = find_services()
    except (OSError, subprocess.SubprocessError, KeyError) as exc:
        print(f"{label}: no service addresses ({exc!r}); {STACK_HINT}", file=sys.stderr)
        return None
    remote = [f"{n} {h}" for n, h, _ in services.endpoints() if not is_loopback_host(h)]
    if remote:
        print(f"{label}: not loopback addresses, refused: {', '.join(remote)}", file=sys.stderr)
        return None
    missing = asyncio.run(unreachable(services))
    if missing:
        print(f"{label}: {', '.join(missing)} not answering; {STACK_HINT}", file=sys.stderr)
        return None
    return services


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    services = usable_services("topology")
    if services is None:
        return EXIT_NO_STACK
    try:
        summary = asyncio.run(run(args, services))
    except DeploymentFailed as exc:
        print(f"topology: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(summary) if args.json else format_table(summary))
    stages = [summary["notifyhub"], summary["relay"], *summary["faust_relay"].values()]
    return EXIT_FAILED if any(stage["missing"] for stage in stages if stage) else 0


if __name__ == "__main__":
    sys.exit(main())
