"""Real-time inbox load, in the spirit of NotifyHub's k6 in-app test: ``--clients``
WebSocket clients (1,000 by default), each receiving one notification sent through the
HTTP API, and the latency from the API's acceptance (the 202) to the frame's receipt.

It makes a deployment of its own on the running native stack (app id and topic prefix
``inbox-<8 hex>``; ``--workers`` workers, the first started alone since it creates the
topics, then the rest; the clients spread over them and each notification sent through
another worker than its client's, so most messages cross workers through Redis), creates
a tenant and an API key, gets a token per client, connects every client, then sends one
in-app notification per client at ``--rate`` per second (open loop, at most
``--concurrency`` requests in flight), and prints percentiles (nearest rank) of
acceptance → receipt, how many were sent, arrived and went missing, and how long the
connecting took. NotifyHub's own bar: p95 < 2 s, p99 < 5 s.

At the end the clients are closed before the workers are stopped (a worker with
WebSockets open may not exit within 30 s of SIGTERM), a worker still running after
``WORKER_STOP_TIMEOUT_SECONDS`` is killed, and the deployment's topics and sink list
are deleted; PostgreSQL rows are left behind. Addresses come from the environment or
``deployments/local/stack.sh env``, as for ``topology.py``, and must be loopback ones.
It exits 1 when a notification is missing or a request failed, 2 when there is no stack.

    deployments/local/stack.sh up
    .venv/bin/python bench/inbox_load.py --clients 1000 --workers 2 --rate 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
from pydantic import SecretStr

# Run as a script, only this folder is on sys.path: the repository's root goes first (as in
# tests/test_benches.py's PYTHONPATH), so that the other benchmarks import under the names
# the tests and mypy give them (bench.http_load). Shares the topology benchmark's deployment helpers.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.http_load import nearest_rank, positive_float, positive_int
from bench.topology import (
    EXIT_FAILED,
    EXIT_NO_STACK,
    DeploymentFailed,
    Services,
    WorkerProcess,
    clean_up,
    create_tenant,
    migrate,
    start_workers,
    usable_services,
    wait_until_ready,
)
from notifyhub.db import create_pool, tenants
from notifyhub.runtime.settings import Settings

PERCENTILES = (50, 95, 99)
# Requests in flight while tokens are fetched and sockets opened.
SETUP_CONCURRENCY = 100
# Each client needs a socket here and one in a worker; the default soft limit (often
# 1,024) is too low for 1,000 clients, so it is raised to the hard limit.
FILES_NEEDED_PER_CLIENT = 2
# Bounds one HTTP request (a token, a WebSocket handshake, a send), so a stuck worker
# cannot hang the run; an open WebSocket is not bounded by it.
REQUEST_TIMEOUT_SECONDS = 60
# Closing the clients: each close waits for the worker's close frame; what has not
# closed by then is dropped with the HTTP session.
CLIENT_CLOSE_TIMEOUT_SECONDS = 10
# Once its clients are gone a worker exits within about 2 s of SIGTERM, but now and then
# one stopping while the other's departure rebalances the group hangs; past this it is
# killed. Shorter than topology.py's 30 s: the deployment is deleted right after, so a
# clean stop saves nothing.
WORKER_STOP_TIMEOUT_SECONDS = 10
# In-app notifications go to the inbox provider (the live feed); the others to the sink.
DELIVERY = {"NOTIFYHUB_SINK_CHANNELS": "email,sms,push", "NOTIFYHUB_API_RATE_LIMIT": "100000000"}


def log(message: str) -> None:
    print(f"inbox_load: {message}", file=sys.stderr, flush=True)


def raise_file_limit(clients: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, clients * FILES_NEEDED_PER_CLIENT + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def api_key_for(database_url: str, tenant_id: Any) -> str:
    pool = await create_pool(Settings(database_url=SecretStr(database_url)))
    try:
        _, raw_key = await tenants.create_api_key(pool, tenant_id, "inbox load")
        return raw_key
    finally:
        await pool.close()


async def bounded(limit: int, jobs: list[Any]) -> list[Any]:
    slots = asyncio.Semaphore(limit)

    async def one(job: Any) -> Any:
        async with slots:
            return await job

    return await asyncio.gather(*(one(job) for job in jobs))


async def receive(
    socket: aiohttp.ClientWebSocketResponse, received: dict[str, float], arrival: asyncio.Event
) -> None:
    async for frame in socket:
        if frame.type != aiohttp.WSMsgType.TEXT:
            break
        message = json.loads(frame.data)
        if message["type"] == "message":
            received.setdefault(message["data"]["notification_id"], time.time())
            arrival.set()


async def close_clients(
    sockets: list[aiohttp.ClientWebSocketResponse], readers: list[asyncio.Task[None]]
) -> None:
    """Stop reading, then close every socket (bounded), so the workers can stop."""
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    try:
        async with asyncio.timeout(CLIENT_CLOSE_TIMEOUT_SECONDS):
            await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
    except TimeoutError:
        open_ = sum(1 for socket in sockets if not socket.closed)
        log(f"{open_} clients not closed after {CLIENT_CLOSE_TIMEOUT_SECONDS}s; dropping them")


async def stop_worker(worker: WorkerProcess) -> None:
    """SIGTERM, then SIGKILL if it has not exited in ``WORKER_STOP_TIMEOUT_SECONDS``."""
    process = worker.process
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), WORKER_STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        log(f"worker {worker.index} did not stop in {WORKER_STOP_TIMEOUT_SECONDS}s; killing it")
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def load(args: argparse.Namespace, urls: list[str], api_key: str) -> dict[str, Any]:
    """Connect the clients, send one notification to each and wait for the frames."""
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    readers: list[asyncio.Task[None]] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    headers = {"X-API-Key": api_key}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as http:

        async def token(n: int) -> str:
            url = f"{urls[n % len(urls)]}/api/v1/ws-token"
            async with http.post(url, json={"recipient_id": f"load-{n}"}) as response:
                if response.status != 200:
                    text = await response.text()
                    raise DeploymentFailed(f"POST {url} answered {response.status}: {text[:500]}")
                return cast(str, (await response.json())["data"]["token"])

        async def connect(n: int, token_value: str) -> None:
            url = f"{urls[n % len(urls)]}/api/v1/inbox/stream?token={token_value}"
            # Kept as soon as it is open, so a failure later still closes it.
            sockets.append(await http.ws_connect(url, heartbeat=None, autoping=True))

        received: dict[str, float] = {}
        arrival = asyncio.Event()
        accepted: dict[str, float] = {}
        failures: Counter[str] = Counter()
        slots = asyncio.Semaphore(args.concurrency)

        async def send(n: int) -> None:
            # Sent through the other worker than the socket's, when there are two.
            url = f"{urls[(n + 1) % len(urls)]}/api/v1/notifications"
            body = {"channel": "inapp", "recipient_id": f"load-{n}", "payload": {"body": f"ping {n}"}}
            try:
                async with http.post(url, json=body) as response:
                    if response.status != 202:
                        failures[str(response.status)] += 1
                        return
                    accepted[(await response.json())["data"]["id"]] = time.time()
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures[type(exc).__name__] += 1

        async def paced(n: int) -> None:
            # Open loop at --rate: request n is due n / rate seconds after the first,
            # whatever came before; it waits for a slot only when --concurrency are in flight.
            await asyncio.sleep(send_started + n / args.rate - time.perf_counter())
            async with slots:
                await send(n)

        try:
            started = time.perf_counter()
            try:
                tokens = await bounded(SETUP_CONCURRENCY, [token(n) for n in range(args.clients)])
                await bounded(SETUP_CONCURRENCY, [connect(n, t) for n, t in enumerate(tokens)])
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise DeploymentFailed(f"connecting the clients failed: {exc!r}") from exc
            connect_seconds = time.perf_counter() - started
            log(f"{len(sockets)} clients connected in {connect_seconds:.1f}s")
            readers = [asyncio.create_task(receive(socket, received, arrival)) for socket in sockets]

            send_started = time.perf_counter()
            await asyncio.gather(*(paced(n) for n in range(args.clients)))
            send_seconds = time.perf_counter() - send_started
            log(f"sent {len(accepted)} in {send_seconds:.1f}s; waiting for the frames")
            deadline = time.perf_counter() + args.timeout
            while not accepted.keys() <= received.keys():
                arrival.clear()
                try:
                    await asyncio.wait_for(arrival.wait(), deadline - time.perf_counter())
                except TimeoutError:
                    break
            latencies = sorted(received[i] - accepted[i] for i in accepted if i in received)
        finally:
            # Before the workers are stopped: one with WebSockets open may not exit.
            await close_clients(sockets, readers)
    return {
        "clients": args.clients,
        "workers": args.workers,
        "connect_seconds": connect_seconds,
        "sent": len(accepted),
        "http_errors": sum(failures.values()),
        "http_errors_by_kind": dict(sorted(failures.items())),
        "send_rate_per_s": len(accepted) / send_seconds if send_seconds else None,
        "received": len(latencies),
        "missing": len(accepted) - len(latencies),
        "latency_ms": {
            **{f"p{p}": nearest_rank(latencies, p) * 1000 if latencies else None for p in PERCENTILES},
            "max": latencies[-1] * 1000 if latencies else None,
        },
    }


@dataclass
class Deployment:
    """A bench's throwaway deployment: its tenant, API key and ready workers."""

    name: str
    tenant_id: uuid.UUID
    api_key: str
    workers: list[WorkerProcess]
    # Set by the bench when its run went well: the worker logs are then deleted.
    succeeded: bool = False


@contextlib.asynccontextmanager
async def deployment(
    services: Services, kind: str, workers: int, partitions: int, delivery: dict[str, str]
) -> AsyncIterator[Deployment]:
    """A deployment of ``workers`` ready workers, stopped and deleted on the way out."""
    name = f"{kind}-{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix=f"notifyhub-{name}-"))
    log(f"deployment {name}; worker logs under {workdir}")
    started: list[WorkerProcess] = []
    deployed: Deployment | None = None
    try:
        await migrate(services)
        tenant_id = await create_tenant(services.database_url, name)
        api_key = await api_key_for(services.database_url, tenant_id)
        # The first worker alone: it creates the topics, and a worker that joins while they
        # are missing gets none of their partitions until the next rebalance.
        started = await start_workers(services, name, workdir, range(1), partitions, delivery)
        log(f"waiting for {workers} worker(s) to be ready")
        await wait_until_ready(started)
        started += await start_workers(services, name, workdir, range(1, workers), partitions, delivery)
        await wait_until_ready(started)
        deployed = Deployment(name, tenant_id, api_key, started)
        yield deployed
    finally:
        await asyncio.gather(*(stop_worker(worker) for worker in started))
        await clean_up(services, name)
        if deployed is not None and deployed.succeeded:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"worker logs kept under {workdir}")


async def run(args: argparse.Namespace, services: Services) -> dict[str, Any]:
    raise_file_limit(args.clients)
    async with deployment(services, "inbox", args.workers, args.partitions, DELIVERY) as deployed:
        summary = await load(args, [worker.url for worker in deployed.workers], deployed.api_key)
        deployed.succeeded = True
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    latency = summary["latency_ms"]
    rate = summary["send_rate_per_s"]
    errors = summary["http_errors_by_kind"]
    return (
        f"clients {summary['clients']} on {summary['workers']} workers, connected in "
        f"{summary['connect_seconds']:.1f}s\n"
        f"sent {summary['sent']} ({'-' if rate is None else f'{rate:.0f}'}/s, "
        f"{summary['http_errors']} HTTP errors{f' {errors}' if errors else ''}), "
        f"received {summary['received']}, missing {summary['missing']}\n"
        "acceptance -> receipt: "
        + (", ".join(f"{k} {v:.0f} ms" for k, v in latency.items() if v is not None) or "-")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=positive_int, default=1000, help="WebSocket clients")
    parser.add_argument("--workers", type=positive_int, default=2, help="worker processes")
    parser.add_argument("--partitions", type=positive_int, default=8, help="partitions per topic")
    parser.add_argument(
        "--rate", type=positive_float, default=100.0, help="notifications sent per second (open loop)"
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=50, help="API requests in flight at most"
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=120.0, help="seconds to wait for receipt"
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    services = usable_services("inbox_load")
    if services is None:
        return EXIT_NO_STACK
    try:
        summary = asyncio.run(run(args, services))
    except DeploymentFailed as exc:
        print(f"inbox_load: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(summary) if args.json else format_summary(summary))
    return EXIT_FAILED if summary["missing"] or summary["http_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
