"""Real-time inbox load, in the spirit of NotifyHub's k6 in-app test: ``--clients``
WebSocket clients (1,000 by default), each receiving one notification sent through the
HTTP API, and the latency from the API's acceptance (the 202) to the frame's receipt.

It makes a deployment of its own on the running native stack (``--workers`` workers,
the clients spread over them, so most messages cross workers through Redis), creates a
tenant and an API key, gets a token per client, connects every client, then sends one
in-app notification per client at ``--rate`` per second, and prints
percentiles (nearest rank) of acceptance → receipt, how many arrived, and how long the
connecting took. NotifyHub's own bar: p95 < 2 s, p99 < 5 s.

    deployments/local/stack.sh up
    .venv/bin/python bench/inbox_load.py --clients 1000 --workers 2 --rate 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

# Run as a script, this folder is on sys.path: share the topology benchmark's deployment helpers.
from http_load import nearest_rank, positive_float, positive_int
from topology import (
    EXIT_FAILED,
    EXIT_NO_STACK,
    STACK_HINT,
    DeploymentFailed,
    clean_up,
    create_tenant,
    find_services,
    log,
    migrate,
    start_workers,
    unreachable,
    wait_until_ready,
)

from notifyhub.db import create_pool, tenants
from notifyhub.settings import Settings

PERCENTILES = (50, 95, 99)
# Requests in flight while tokens are fetched and sockets opened.
SETUP_CONCURRENCY = 100
# Each client needs a socket here and one in a worker; the default soft limit (often
# 1,024) is too low for 1,000 clients, so it is raised to the hard limit.
FILES_NEEDED_PER_CLIENT = 2


def raise_file_limit(clients: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, clients * FILES_NEEDED_PER_CLIENT + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def api_key_for(database_url: str, tenant_id: Any) -> str:
    pool = await create_pool(Settings(DATABASE_URL=database_url))
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


async def run(args: argparse.Namespace) -> dict[str, Any]:
    services = find_services()
    missing = await unreachable(services)
    if missing:
        raise DeploymentFailed(f"{', '.join(missing)} not answering; {STACK_HINT}")
    raise_file_limit(args.clients)
    name = f"inbox-{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix=f"notifyhub-{name}-"))
    log(f"deployment {name}; worker logs under {workdir}")
    workers = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    readers: list[asyncio.Task[None]] = []
    try:
        await migrate(services)
        tenant_id = await create_tenant(services.database_url, name)
        api_key = await api_key_for(services.database_url, tenant_id)
        delivery = {"NOTIFYHUB_SINK_CHANNELS": "email,sms,push", "NOTIFYHUB_API_RATE_LIMIT": "100000000"}
        workers = await start_workers(services, name, workdir, args.workers, args.partitions, delivery)
        await wait_until_ready(workers)
        headers = {"X-API-Key": api_key}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        ) as http:

            async def token(n: int) -> str:
                url = f"{workers[n % len(workers)].url}/api/v1/ws-token"
                async with http.post(
                    url, json={"recipient_id": f"load-{n}"}, headers=headers
                ) as response:
                    return (await response.json())["data"]["token"]

            async def connect(n: int, token_value: str) -> aiohttp.ClientWebSocketResponse:
                url = f"{workers[n % len(workers)].url}/api/v1/inbox/stream?token={token_value}"
                return await http.ws_connect(url, heartbeat=None, autoping=True)

            started = time.perf_counter()
            tokens = await bounded(SETUP_CONCURRENCY, [token(n) for n in range(args.clients)])
            sockets = await bounded(SETUP_CONCURRENCY, [connect(n, t) for n, t in enumerate(tokens)])
            connect_seconds = time.perf_counter() - started
            log(f"{len(sockets)} clients connected in {connect_seconds:.1f}s")
            received: dict[str, float] = {}
            arrival = asyncio.Event()
            readers = [asyncio.create_task(receive(socket, received, arrival)) for socket in sockets]
            accepted: dict[str, float] = {}
            errors = 0

            async def send(n: int) -> None:
                nonlocal errors
                # Sent through the other worker than the socket's, when there are two.
                url = f"{workers[(n + 1) % len(workers)].url}/api/v1/notifications"
                body = {
                    "channel": "inapp",
                    "recipient_id": f"load-{n}",
                    "payload": {"body": f"ping {n}"},
                }
                async with http.post(url, json=body, headers=headers) as response:
                    if response.status != 202:
                        errors += 1
                        return
                    accepted[(await response.json())["data"]["id"]] = time.time()

            async def paced(n: int) -> None:
                # Open loop at --rate: request n starts at n / rate seconds, whatever came before.
                await asyncio.sleep(n / args.rate - (time.perf_counter() - send_started))
                await send(n)

            send_started = time.perf_counter()
            await bounded(args.concurrency, [paced(n) for n in range(args.clients)])
            send_seconds = time.perf_counter() - send_started
            deadline = time.perf_counter() + args.timeout
            while not accepted.keys() <= received.keys():
                arrival.clear()
                try:
                    await asyncio.wait_for(arrival.wait(), deadline - time.perf_counter())
                except TimeoutError:
                    break
            latencies = sorted(received[i] - accepted[i] for i in accepted if i in received)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
        await asyncio.gather(*(worker.stop() for worker in workers))
        await clean_up(services, name)
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "clients": args.clients,
        "workers": args.workers,
        "connect_seconds": connect_seconds,
        "sent": len(accepted),
        "http_errors": errors,
        "send_rate_per_s": len(accepted) / send_seconds if send_seconds else None,
        "received": len(latencies),
        "missing": len(accepted) - len(latencies),
        "latency_ms": {
            **{f"p{p}": nearest_rank(latencies, p) * 1000 if latencies else None for p in PERCENTILES},
            "max": latencies[-1] * 1000 if latencies else None,
        },
    }


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
    try:
        summary = asyncio.run(run(args))
    except DeploymentFailed as exc:
        print(f"inbox_load: {exc}", file=sys.stderr)
        return EXIT_NO_STACK if "not answering" in str(exc) else EXIT_FAILED
    if args.json:
        print(json.dumps(summary))
    else:
        latency = summary["latency_ms"]
        print(
            f"clients {summary['clients']} on {summary['workers']} workers, connected in "
            f"{summary['connect_seconds']:.1f}s\n"
            f"sent {summary['sent']} ({summary['send_rate_per_s']:.0f}/s, "
            f"{summary['http_errors']} HTTP errors), "
            f"received {summary['received']}, missing {summary['missing']}\n"
            "acceptance -> receipt: "
            + ", ".join(f"{k} {v:.0f} ms" for k, v in latency.items() if v is not None)
        )
    return EXIT_FAILED if summary["missing"] or summary["http_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
