"""Topic fan-out rate: one send to a topic of ``--subscribers`` recipients (100,000 by
default), and how fast it reaches them: subscribers per second from the send's 202 until
every notification is stored in PostgreSQL, and until every one is delivered.

It makes a deployment of its own on the running native stack (app id and topic prefix
``fanout-<8 hex>``, ``--workers`` workers, every channel to the sink provider), creates a
tenant and an API key, creates a topic and subscribes the recipients through the API (1,000
a call), sends one in-app notification to the topic, then polls PostgreSQL for the send's
notifications (those whose payload names the send) until all are delivered or
``--timeout`` passes. At the end the workers are stopped and the deployment's topics and
sink list deleted; PostgreSQL rows are left behind. Addresses come from the environment or
``deployments/local/stack.sh env``, as for ``topology.py``. It exits 1 when a notification
is missing or the deployment failed, 2 when there is no stack.

    deployments/local/stack.sh up
    .venv/bin/python bench/topic_fanout.py --subscribers 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, cast

import aiohttp
import asyncpg

# Run as a script, only this folder is on sys.path: the repository's root goes first (as in
# tests/test_benches.py's PYTHONPATH), so that the other benchmarks import under the names
# the tests and mypy give them (bench.http_load). Shares the other benchmarks' helpers.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.http_load import positive_float, positive_int
from bench.inbox_load import bounded, deployment
from bench.topology import (
    EXIT_FAILED,
    EXIT_NO_STACK,
    DeploymentFailed,
    Services,
    usable_services,
)

DELIVERY = {"NOTIFYHUB_SINK_CHANNELS": "all", "NOTIFYHUB_API_RATE_LIMIT": "100000000"}
# The API's most recipients per subscribe call, and the calls in flight while subscribing.
SUBSCRIBE_BATCH = 1000
SUBSCRIBE_CONCURRENCY = 8
REQUEST_TIMEOUT_SECONDS = 60
# Each poll counts the send's notifications (a scan of the tenant's); once a second keeps
# that small beside the pipeline's own work.
POLL_SECONDS = 1.0
TOPIC_KEY = "everyone"

COUNTS = """
SELECT count(*) AS stored, count(*) FILTER (WHERE status = 'delivered') AS delivered
  FROM notifications WHERE tenant_id = $1 AND payload->>'topic_send_id' = $2
"""


def log(message: str) -> None:
    print(f"topic_fanout: {message}", file=sys.stderr, flush=True)


async def subscribe(http: aiohttp.ClientSession, url: str, headers: dict[str, str], count: int) -> None:
    recipients = [f"user-{n:07d}" for n in range(count)]

    async def one(batch: list[str]) -> None:
        async with http.post(
            f"{url}/api/v1/topics/{TOPIC_KEY}/subscribers",
            json={"recipient_ids": batch},
            headers=headers,
        ) as response:
            if response.status != 200:
                raise DeploymentFailed(
                    f"subscribing answered {response.status}: {await response.text()}"
                )

    await bounded(
        SUBSCRIBE_CONCURRENCY,
        [one(recipients[i : i + SUBSCRIBE_BATCH]) for i in range(0, count, SUBSCRIBE_BATCH)],
    )


async def fan_out(
    args: argparse.Namespace, services: Services, url: str, tenant_id: Any, api_key: str
) -> dict[str, Any]:
    headers = {"X-API-Key": api_key}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.post(
            f"{url}/api/v1/topics", json={"key": TOPIC_KEY, "name": "Everyone"}, headers=headers
        ) as response:
            if response.status != 201:
                raise DeploymentFailed(f"creating the topic answered {response.status}")
        started = time.monotonic()
        await subscribe(http, url, headers, args.subscribers)
        log(f"subscribed {args.subscribers} in {time.monotonic() - started:.1f}s; sending")
        request = {"channel": "inapp", "payload": {"title": "Hello", "body": "To everyone"}}
        async with http.post(
            f"{url}/api/v1/topics/{TOPIC_KEY}/notifications", json=request, headers=headers
        ) as response:
            body = await response.json()
            if response.status != 202:
                raise DeploymentFailed(f"the send answered {response.status}: {body}")
        accepted = time.monotonic()
    send_id = body["data"]["id"]
    stored_at: float | None = None
    stored = delivered = 0
    conn = await asyncpg.connect(services.database_url)
    try:
        while time.monotonic() - accepted < args.timeout:
            # COUNTS aggregates: it always answers one row.
            stored, delivered = cast(asyncpg.Record, await conn.fetchrow(COUNTS, tenant_id, send_id))
            now = time.monotonic()
            if stored_at is None and stored == args.subscribers:
                stored_at = now
            if delivered == args.subscribers:
                break
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await conn.close()
    delivered_at = time.monotonic() if delivered == args.subscribers else None

    def rate(at: float | None) -> float | None:
        return args.subscribers / (at - accepted) if at is not None else None

    return {
        "subscribers": args.subscribers,
        "workers": args.workers,
        "partitions": args.partitions,
        "stored": stored,
        "delivered": delivered,
        "seconds_to_all_stored": stored_at - accepted if stored_at else None,
        "seconds_to_all_delivered": delivered_at - accepted if delivered_at else None,
        "stored_per_s": rate(stored_at),
        "delivered_per_s": rate(delivered_at),
    }


async def run(args: argparse.Namespace, services: Services) -> dict[str, Any]:
    async with deployment(services, "fanout", args.workers, args.partitions, DELIVERY) as deployed:
        summary = await fan_out(
            args, services, deployed.workers[0].url, deployed.tenant_id, deployed.api_key
        )
        deployed.succeeded = summary["delivered"] == args.subscribers
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    def figure(seconds: float | None, rate: float | None) -> str:
        return (
            "not reached"
            if seconds is None or rate is None
            else f"{seconds:.1f}s, {rate:,.0f} subscribers/s"
        )

    return (
        f"{summary['subscribers']} subscribers, {summary['workers']} worker(s), "
        f"{summary['partitions']} partitions\n"
        f"202 -> all stored:    {figure(summary['seconds_to_all_stored'], summary['stored_per_s'])}\n"
        "202 -> all delivered: "
        f"{figure(summary['seconds_to_all_delivered'], summary['delivered_per_s'])}"
        f" ({summary['delivered']} delivered)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=positive_int, default=100_000, help="topic subscribers")
    parser.add_argument("--workers", type=positive_int, default=1, help="worker processes")
    parser.add_argument("--partitions", type=positive_int, default=8, help="partitions per topic")
    parser.add_argument(
        "--timeout", type=positive_float, default=600.0, help="seconds to wait for delivery"
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    services = usable_services("topic_fanout")
    if services is None:
        return EXIT_NO_STACK
    try:
        summary = asyncio.run(run(args, services))
    except DeploymentFailed as exc:
        print(f"topic_fanout: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(summary) if args.json else format_summary(summary))
    return 0 if summary["delivered"] == args.subscribers else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
