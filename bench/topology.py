"""End-to-end benchmark of NotifyHub's Kafka topology, beside a plain Kafka relay.

It makes a fresh deployment of its own on the running native stack (app id and topic
prefix ``bench-<8 hex>``): migrates the database, creates a tenant, starts ``--workers``
worker processes that send every channel to the sink provider, produces ``--count``
intake messages (the public v1 contract, each with its own ``id``) straight to
``{prefix}.intake`` as fast as one producer can, and waits until the sink has recorded
every one. From the produce times and the sink's ``recorded_at`` it reports:

* throughput: count / (last notification recorded - first produced);
* intake→sent latency per notification (p50/p95/p99/max, nearest rank);
* duplicates (ids the sink recorded more than once) and missing ids, and the repeated
  sends the sink's dedupe key absorbed (``sink repeats``: sent again, recorded once);
* each worker's peak RSS (``VmHWM``, with the highest ``VmRSS`` sampled every second
  as a check).

Then, on the same broker, with the workers stopped, a baseline: the same messages
through a plain aiokafka relay (``{prefix}-relay.0`` → … → ``{prefix}-relay.<hops>``,
by default 3 hops like intake→enrich→send; JSON decoded and re-encoded at each hop,
acks=all, each hop's offsets committed only after what it produced is acknowledged),
and the ratios NotifyHub/relay. The relay's tasks share this process with the load
producer; NotifyHub's delivery events and PostgreSQL writes have no counterpart in it.

With ``--provider ses|smtp|twilio`` the workers send through that provider's real client
to its local protocol server (``tests/servers/``, in a process of its own) and arrivals
are read from the delivery log (``delivered`` rows, stamped when the provider answered;
a second row for one notification counts as a duplicate).

Every message is produced in one burst, so latency here is mostly time spent waiting
in the backlog (about count / throughput / 2 at the median), not the latency of one
notification through an idle pipeline.

Addresses come from ``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL`` and ``REDIS_URL``,
else from ``deployments/local/stack.sh env``; each must be a loopback address. At the
end the workers are stopped and the deployment's topics and sink list are deleted;
PostgreSQL rows (the tenant and its notifications) and Kafka's record of the consumer
groups (expired by the broker) are left behind.

    deployments/local/stack.sh up
    .venv/bin/python bench/topology.py --count 20000 --workers 2
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

# Run as a script, this folder is on sys.path: share the HTTP load generator's helpers.
from http_load import is_loopback_host, nearest_rank, positive_float, positive_int, request_body

from notifyhub.db import tenants
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
PROGRESS_SECONDS = 5
RSS_SAMPLE_SECONDS = 1
# LRANGE this many records per call, so a 50,000-record list is not one huge reply.
SINK_READ_CHUNK = 5000
# intake → enrich → send.<channel>: the hops a notification takes between topics.
DEFAULT_RELAY_HOPS = 3
LOG_TAIL_LINES = 40
PERCENTILES = (50, 95, 99)
KIB_PER_MIB = 1024


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
        return sock.getsockname()[1]


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
    """One ``notifyhub worker`` of the benchmark deployment, and its memory figures."""

    index: int
    process: asyncio.subprocess.Process
    url: str
    log_path: Path
    max_sampled_rss_kib: int = 0
    peak_rss_kib: int | None = None

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def describe_failure(self, what: str) -> str:
        return f"worker {self.index} {what}; last lines of {self.log_path}:\n{self.log_tail()}"

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
            log(f"worker {self.index} did not stop in {WORKER_STOP_TIMEOUT_SECONDS}s; killing it")
            self.process.kill()
            await self.process.wait()


async def migrate(services: Services) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifyhub.cli",
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
        return (await tenants.create_tenant(pool, name))["id"]
    finally:
        await pool.close()


# --provider: the local server speaking the provider's protocol (run as a module of the
# test suite, in its own process) and the channel it sends.
PROVIDER_SERVERS = {
    "ses": ("tests.servers.ses", "email"),
    "smtp": ("tests.servers.smtp", "email"),
    "twilio": ("tests.servers.twilio", "sms"),
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
        }
        log_path = home / "worker.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "notifyhub.cli",
                "worker",
                env=env,
                cwd=home,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
            )
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
class Burst:
    """When each message was handed to the producer, and when the last was acknowledged."""

    sent_at: dict[str, float]
    first_sent: float
    all_acked: float

    @property
    def rate(self) -> float:
        return len(self.sent_at) / max(self.all_acked - self.first_sent, 1e-9)


async def produce_burst(
    producer: AIOKafkaProducer, topic: str, messages: list[OutgoingMessage]
) -> Burst:
    """Produce every message as fast as the producer takes them, then wait for the acks."""
    sent_at: dict[str, float] = {}
    acks = []
    for message in messages:
        # time.time(), not a monotonic clock: the sink's recorded_at is the worker's time.time().
        sent_at[message.id] = time.time()
        acks.append(await producer.send(topic, value=message.value, key=message.key))
    await asyncio.wait_for(asyncio.gather(*acks), SERVICE_TIMEOUT_SECONDS)
    all_acked = time.time()
    return Burst(sent_at, min(sent_at.values()), all_acked)


@dataclass
class Arrivals:
    """What reached the end of a pipeline: the first arrival time of each id, and copies."""

    expected: frozenset[str]
    first: dict[str, float] = field(default_factory=dict)
    copies: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0

    def record(self, message_id: str, at: float) -> None:
        if message_id not in self.expected:
            self.unexpected += 1
            return
        self.copies[message_id] += 1
        self.first.setdefault(message_id, at)

    @property
    def complete(self) -> bool:
        return len(self.first) >= len(self.expected)


async def wait_for_arrivals(
    label: str, arrivals: Arrivals, deadline: float, still_running: Callable[[], bool]
) -> None:
    """Until every message arrived, the deadline (loop time) passed or nothing runs any more."""
    loop = asyncio.get_running_loop()
    last_report, last_count = loop.time(), 0
    while not arrivals.complete and loop.time() < deadline and still_running():
        await asyncio.sleep(POLL_SECONDS)
        now = loop.time()
        if now - last_report >= PROGRESS_SECONDS:
            count = len(arrivals.first)
            rate = (count - last_count) / (now - last_report)
            log(
                f"{label}: {count}/{len(arrivals.expected)} arrived "
                f"({rate:.0f}/s lately), {deadline - now:.0f}s left"
            )
            last_report, last_count = now, count


async def read_sink(client: redis.Redis, key: str, arrivals: Arrivals) -> None:
    """Follow the sink's list (append-only, so indexes are stable) into ``arrivals``."""
    read = 0
    while True:
        length = await client.llen(key)
        while read < length:
            chunk = await client.lrange(key, read, min(read + SINK_READ_CHUNK, length) - 1)
            if not chunk:
                break
            for raw in chunk:
                record = json.loads(raw)
                arrivals.record(record["notification_id"], record["recorded_at"])
            read += len(chunk)
        await asyncio.sleep(POLL_SECONDS)


async def read_delivery_log(database_url: str, tenant_id: uuid.UUID, arrivals: Arrivals) -> None:
    """Follow the tenant's ``delivered`` rows in the delivery log into ``arrivals`` (for real
    providers, which record nothing we can read): ``occurred_at`` is the worker's clock
    when the provider answered, and a second row for a notification is a second send."""
    connection = await asyncpg.connect(database_url)
    try:
        after = 0
        while True:
            rows = await connection.fetch(
                "SELECT id, notification_id::text AS nid, extract(epoch FROM occurred_at) AS at "
                "FROM delivery_log WHERE tenant_id = $1 AND status = 'delivered' AND id > $2 "
                "ORDER BY id LIMIT $3",
                tenant_id,
                after,
                SINK_READ_CHUNK,
            )
            for row in rows:
                arrivals.record(row["nid"], float(row["at"]))
                after = row["id"]
            if len(rows) < SINK_READ_CHUNK:
                await asyncio.sleep(POLL_SECONDS)
    finally:
        await connection.close()


def stage_figures(arrivals: Arrivals, burst: Burst) -> dict[str, Any]:
    """Throughput, latency percentiles (ms), duplicates and missing ids of one run."""
    latencies = sorted(at - burst.sent_at[message_id] for message_id, at in arrivals.first.items())
    latency_ms: dict[str, float | None] = {
        f"p{p}": nearest_rank(latencies, p) * 1000 if latencies else None for p in PERCENTILES
    }
    latency_ms["max"] = latencies[-1] * 1000 if latencies else None
    elapsed = max(arrivals.first.values()) - burst.first_sent if arrivals.first else None
    return {
        "delivered": len(arrivals.first),
        "missing": len(arrivals.expected) - len(arrivals.first),
        "duplicates": sum(1 for copies in arrivals.copies.values() if copies > 1),
        "unexpected": arrivals.unexpected,
        "produce_rate_per_s": burst.rate,
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


# ---------------------------------------------------------------- NotifyHub


async def run_notifyhub(
    args: argparse.Namespace,
    services: Services,
    name: str,
    workers: list[WorkerProcess],
    messages: list[OutgoingMessage],
    tenant_id: uuid.UUID,
) -> dict[str, Any]:
    """Produce the burst to intake and follow the sink (or, for a real provider, the
    delivery log) until all arrived or time ran out."""
    loop = asyncio.get_running_loop()
    client = redis.Redis.from_url(
        services.redis_url,
        socket_timeout=SERVICE_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
    )
    producer = load_producer(services)
    reader: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(producer.start(), SERVICE_TIMEOUT_SECONDS)
        deadline = loop.time() + args.timeout
        log(f"producing {len(messages)} messages to {name}.intake")
        burst = await produce_burst(producer, f"{name}.intake", messages)
        log(f"produced at {burst.rate:.0f}/s; waiting for the {args.provider} provider")
        arrivals = Arrivals(frozenset(burst.sent_at))
        if args.provider == "sink":
            reader = asyncio.create_task(read_sink(client, sink_key(name), arrivals))
        else:
            reader = asyncio.create_task(read_delivery_log(services.database_url, tenant_id, arrivals))

        def still_running() -> bool:
            if reader.done():
                return False
            return any(worker.process.returncode is None for worker in workers)

        await wait_for_arrivals("NotifyHub", arrivals, deadline, still_running)
        if reader.done() and reader.exception() is not None:
            raise DeploymentFailed(f"reading the sink failed: {reader.exception()!r}")
        for worker in workers:
            if worker.process.returncode is not None:
                log(worker.describe_failure(f"exited ({worker.process.returncode}) during the run"))
        figures = stage_figures(arrivals, burst)
        if args.provider == "sink":
            figures["sink_repeats"] = int(await client.get(sink_keys(name).repeats) or 0)
        return figures
    finally:
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await producer.stop()
        await client.aclose()


# ---------------------------------------------------------------- the relay baseline


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
    """Until every consumer joined its group, so the burst does not wait for the joins."""
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


async def run_relay(
    args: argparse.Namespace, services: Services, name: str, messages: list[OutgoingMessage]
) -> dict[str, Any]:
    """The same burst through ``--relay-hops`` plain consume→produce hops; the same figures."""
    loop = asyncio.get_running_loop()
    topics = relay_topics(name, args.relay_hops)
    bootstrap = services.kafka_bootstrap_servers

    def consumer(topic: str, group: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=SERVICE_TIMEOUT_SECONDS * 1000,
        )

    hops = [consumer(topic, f"{name}-relay-{hop}") for hop, topic in enumerate(topics[:-1])]
    final = consumer(topics[-1], f"{name}-relay-final")
    relay_producer = load_producer(services)
    producer = load_producer(services)
    clients: list[AIOKafkaConsumer | AIOKafkaProducer] = [*hops, final, relay_producer, producer]
    tasks: list[asyncio.Task[None]] = []
    started: list[AIOKafkaConsumer | AIOKafkaProducer] = []
    try:
        for client in clients:
            await asyncio.wait_for(client.start(), SERVICE_TIMEOUT_SECONDS)
            started.append(client)
        # Known before the burst: the first messages arrive while it is still being produced.
        arrivals = Arrivals(frozenset(message.id for message in messages))
        tasks = [
            asyncio.create_task(relay_hop(hop, relay_producer, destination))
            for hop, destination in zip(hops, topics[1:], strict=True)
        ]
        tasks.append(asyncio.create_task(drain(final, arrivals)))
        await wait_for_assignment([*hops, final], tasks)

        deadline = loop.time() + args.timeout
        log(f"relay: producing {len(messages)} messages to {topics[0]}")
        burst = await produce_burst(producer, topics[0], messages)
        log(f"relay: produced at {burst.rate:.0f}/s; waiting for {topics[-1]}")
        await wait_for_arrivals(
            "relay", arrivals, deadline, lambda: not any(task.done() for task in tasks)
        )
        for task in tasks:
            if task.done():
                task.result()
        return {"hops": args.relay_hops, **stage_figures(arrivals, burst)}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in reversed(started):
            await client.stop()


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
        if not args.skip_relay:
            # Now rather than just before the relay runs: for a while after a topic is
            # created the broker answers NotLeaderForPartition and clients retry, which
            # would land in the relay's figures.
            topics = relay_topics(name, args.relay_hops)
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
        await asyncio.gather(*(worker.stop() for worker in workers))
        relay = None if args.skip_relay else await run_relay(args, services, name, messages)
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
    return report(args, name, tenant_id, notifyhub, workers, relay)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def report(
    args: argparse.Namespace,
    name: str,
    tenant_id: uuid.UUID,
    notifyhub: dict[str, Any],
    workers: list[WorkerProcess],
    relay: dict[str, Any] | None,
) -> dict[str, Any]:
    """The result as plain data: the table and ``--json`` show the same numbers."""
    peaks = [None if w.peak_rss_kib is None else w.peak_rss_kib / KIB_PER_MIB for w in workers]
    known_peaks = [peak for peak in peaks if peak is not None]
    ratios = None
    if relay is not None:
        ratios = {
            "throughput": ratio(notifyhub["throughput_per_s"], relay["throughput_per_s"]),
            "latency_p50": ratio(notifyhub["latency_ms"]["p50"], relay["latency_ms"]["p50"]),
        }
    return {
        "deployment": name,
        "count": args.count,
        "workers": args.workers,
        "partitions": args.partitions,
        "channel": args.channel,
        "provider": args.provider,
        "recipients": args.recipients,
        "notifyhub": notifyhub,
        "worker_peak_rss_mib": peaks,
        "worker_peak_rss_mib_max": max(known_peaks) if known_peaks else None,
        "worker_sampled_rss_mib_max": [w.max_sampled_rss_kib / KIB_PER_MIB for w in workers],
        "relay": relay,
        "ratios": ratios,
        "kept_in_postgresql": f"tenant {name} ({tenant_id}) and its notifications",
    }


def format_table(summary: dict[str, Any]) -> str:
    def duration(ms: float | None) -> str:
        if ms is None:
            return "-"
        return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"

    def number(value: float | None, unit: str = "") -> str:
        return "-" if value is None else f"{value:,.1f}{unit}"

    def times(value: float | None) -> str:
        return "-" if value is None else f"{value:.3g}"

    def mib(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} MiB"

    ours, relay, ratios = summary["notifyhub"], summary["relay"], summary["ratios"]
    sampled = summary["worker_sampled_rss_mib_max"]
    facts = [
        ("deployment", summary["deployment"]),
        (
            "notifications",
            f"{summary['count']} on {summary['channel']} via {summary['provider']}, "
            f"{summary['recipients']} recipients",
        ),
        ("workers", f"{summary['workers']}, {summary['partitions']} partitions per topic"),
        ("produce rate", number(ours["produce_rate_per_s"], "/s")),
        ("worker peak RSS", ", ".join(mib(peak) for peak in summary["worker_peak_rss_mib"])),
        ("  max sampled RSS", ", ".join(mib(peak) for peak in sampled)),
        ("kept in PostgreSQL", summary["kept_in_postgresql"]),
    ]
    width = max(len(label) for label, _ in facts)
    lines = [f"{label:<{width}}  {value}" for label, value in facts]

    relay_title = f"relay ({relay['hops']} hops)" if relay else "relay (skipped)"
    rows: list[tuple[str, str, str, str]] = [("", "NotifyHub", relay_title, "NotifyHub/relay")]

    def row(label: str, ours_text: str, relay_text: str, ratio_value: float | None = None) -> None:
        rows.append((label, ours_text, relay_text if relay else "-", times(ratio_value)))

    row(
        "throughput",
        number(ours["throughput_per_s"], "/s"),
        number(relay and relay["throughput_per_s"], "/s"),
        ratios and ratios["throughput"],
    )
    for name in ("p50", "p95", "p99", "max"):
        row(
            f"latency {name}",
            duration(ours["latency_ms"][name]),
            duration(relay and relay["latency_ms"][name]),
            ratios["latency_p50"] if ratios and name == "p50" else None,
        )
    for name in ("duplicates", "missing"):
        row(name, str(ours[name]), str(relay and relay[name]))
    if "sink_repeats" in ours:
        row("sink repeats", str(ours["sink_repeats"]), "")
    widths = [max(len(r[column]) for r in rows) for column in range(4)]
    lines.append("")
    for cells in rows:
        lines.append(
            "  ".join(
                cell.ljust(widths[0]) if column == 0 else cell.rjust(widths[column])
                for column, cell in enumerate(cells)
            ).rstrip()
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=positive_int, default=50_000, help="notifications to send")
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
        help="seconds to wait for every message to arrive, for NotifyHub and again for the relay",
    )
    parser.add_argument(
        "--relay-hops",
        type=positive_int,
        default=DEFAULT_RELAY_HOPS,
        help="consume→produce hops of the relay baseline",
    )
    parser.add_argument("--skip-relay", action="store_true", help="do not run the relay baseline")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    if args.provider != "sink":
        args.channel = PROVIDER_SERVERS[args.provider][1]
    if args.channel == "sms" and args.recipients > 10**4:
        parser.error("--recipients may be at most 10000 for sms (the phone number's last digits)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        services = find_services()
    except (OSError, subprocess.SubprocessError, KeyError) as exc:
        print(f"topology: no service addresses ({exc!r}); {STACK_HINT}", file=sys.stderr)
        return EXIT_NO_STACK
    remote = [f"{n} {h}" for n, h, _ in services.endpoints() if not is_loopback_host(h)]
    if remote:
        print(f"topology: not loopback addresses, refused: {', '.join(remote)}", file=sys.stderr)
        return EXIT_NO_STACK
    missing = asyncio.run(unreachable(services))
    if missing:
        print(f"topology: {', '.join(missing)} not answering; {STACK_HINT}", file=sys.stderr)
        return EXIT_NO_STACK
    try:
        summary = asyncio.run(run(args, services))
    except DeploymentFailed as exc:
        print(f"topology: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(summary) if args.json else format_table(summary))
    relay_missing = summary["relay"]["missing"] if summary["relay"] else 0
    return EXIT_FAILED if summary["notifyhub"]["missing"] or relay_missing else 0


if __name__ == "__main__":
    sys.exit(main())
