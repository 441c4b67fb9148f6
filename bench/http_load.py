"""HTTP load generator for one NotifyHub worker's ``POST /api/v1/notifications``.

Two ways to apply load:

* closed loop (default): ``--concurrency`` clients each send the next request as soon as
  the previous one answered, so the offered load follows the server's speed;
* open loop (``--rate``): requests are scheduled at a fixed rate whatever the server
  does, still capped at ``--concurrency`` in flight so the tool never runs away; slots
  that could not be sent on time are reported as late or dropped.

Either way it reports the accepted (202) throughput, latency percentiles of the 202s
(nearest rank), the count of every status, and apart from those the requests the
server refused (429 over the rate limit, 503 a backing service unavailable), the
requests that timed out (each is bounded by ``--timeout``) and other client errors.

Only requests that complete inside the measured window (after ``--warmup``, for
``--duration`` seconds) are counted. The run stops by itself, waits for in-flight
requests at most one ``--timeout`` (and a second), and exits non-zero when no request
was accepted.

Load tests here may only target this machine, so a non-loopback ``--url`` is refused
unless ``--allow-remote`` is given.

    .venv/bin/python bench/http_load.py --api-key "$KEY" --duration 10 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import itertools
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

ENDPOINT_PATH = "/api/v1/notifications"
API_KEY_ENV = "NOTIFYHUB_API_KEY"
# The status NotifyHub answers when it durably accepted a notification.
ACCEPTED = 202
# Statuses that mean the server turned the request away rather than failed it: over the
# API key's rate limit, and a backing service (Kafka, PostgreSQL, Redis) unavailable.
REFUSED = (429, 503)
# Default of --timeout: bounds one request end to end, and also how long the run waits
# for in-flight requests at the end, so a stuck server cannot keep the tool alive. Longer
# than NotifyHub's own 10 s wait for Kafka's acknowledgement, after which it answers 503:
# that refusal is then counted as a 503, not as a timeout.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 15.0
# The final wait gives in-flight requests this much longer than --timeout, so their own
# timeout fires first and they are counted as timed out rather than left unfinished.
END_WAIT_SLACK_SECONDS = 1.0
# asyncio timers routinely wake a millisecond or two late; beyond this the generator
# itself could not keep the schedule, and the slot is reported as late.
LATE_TOLERANCE_SECONDS = 0.010
# SMS addresses are +1555000 followed by this many digits: a 10-digit US number.
SMS_SUFFIX_DIGITS = 4
PERCENTILES = (50, 90, 99)
LOOPBACK_NAMES = frozenset({"localhost"})
EXIT_NO_SUCCESS = 1


@dataclass
class LoadResult:
    """What the measured window saw; requests completing outside it are not recorded."""

    window_start: float
    window_end: float
    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    # Every answer's latency, whatever its status: how long the slowest client waited.
    slowest_answer: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    timed_out: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    late: int = 0
    dropped: int = 0
    unfinished: int = 0

    def in_window(self, moment: float) -> bool:
        return self.window_start <= moment < self.window_end


def is_loopback_host(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; names are not resolved on purpose."""
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def request_body(channel: str, n: int) -> dict[str, Any]:
    """The notification for recipient ``n``; email and sms also carry an address."""
    body: dict[str, Any] = {
        "channel": channel,
        "recipient_id": f"load-{n}",
        "payload": {"body": f"load test {n}"},
    }
    if channel == "email":
        body["recipient_address"] = f"load-{n}@example.com"
    elif channel == "sms":
        body["recipient_address"] = f"+1555000{n:0{SMS_SUFFIX_DIGITS}d}"
    return body


def nearest_rank(sorted_values: list[float], percentile: float) -> float:
    """The nearest-rank percentile of an ascending, non-empty list."""
    rank = max(1, math.ceil(percentile / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def send_one(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], result: LoadResult
) -> None:
    """Send one notification and record it if it completed inside the measured window."""
    started = time.perf_counter()
    try:
        async with session.post(url, json=body) as response:
            # Reading the body is part of the request and frees the connection for reuse.
            await response.read()
    except TimeoutError:
        # The session's total timeout (--timeout); aiohttp's own timeout errors subclass it.
        if result.in_window(time.perf_counter()):
            result.timed_out += 1
        return
    except (aiohttp.ClientError, OSError) as exc:
        if result.in_window(time.perf_counter()):
            result.errors[type(exc).__name__] += 1
        return
    finished = time.perf_counter()
    if not result.in_window(finished):
        return
    result.statuses[response.status] += 1
    result.slowest_answer = max(result.slowest_answer, finished - started)
    if response.status == ACCEPTED:
        result.latencies.append(finished - started)


async def closed_loop(
    session: aiohttp.ClientSession,
    url: str,
    bodies: Iterator[dict[str, Any]],
    concurrency: int,
    stop_at: float,
    result: LoadResult,
) -> set[asyncio.Task[None]]:
    """``concurrency`` clients that each send back to back until ``stop_at``; returns,
    at ``stop_at``, the clients still finishing their last request."""

    async def client() -> None:
        while time.perf_counter() < stop_at:
            result.sent += 1
            await send_one(session, url, next(bodies), result)

    clients = {asyncio.create_task(client()) for _ in range(concurrency)}
    # Here and not in the caller's final wait, which only gives the last requests one
    # timeout to finish: the clients run for the whole warmup and measured window.
    await asyncio.sleep(stop_at - time.perf_counter())
    return {task for task in clients if not task.done()}


async def open_loop(
    session: aiohttp.ClientSession,
    url: str,
    bodies: Iterator[dict[str, Any]],
    rate: float,
    max_in_flight: int,
    start_at: float,
    stop_at: float,
    result: LoadResult,
) -> set[asyncio.Task[None]]:
    """Send at ``rate`` per second until ``stop_at``; returns the requests still in flight."""
    in_flight: set[asyncio.Task[None]] = set()
    for slot in itertools.count():
        scheduled = start_at + slot / rate
        if scheduled >= stop_at:
            break
        await asyncio.sleep(scheduled - time.perf_counter())
        counted = result.in_window(scheduled)
        if len(in_flight) >= max_in_flight:
            # Waiting for a free slot would silently lower the rate; dropping shows it.
            result.dropped += counted
            continue
        if counted and time.perf_counter() - scheduled > LATE_TOLERANCE_SECONDS:
            result.late += 1
        result.sent += 1
        task = asyncio.create_task(send_one(session, url, next(bodies), result))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    return set(in_flight)


async def run_load(args: argparse.Namespace) -> LoadResult:
    """Apply the load the arguments describe and return what the measured window saw."""
    url = args.url.rstrip("/") + ENDPOINT_PATH
    recipients = itertools.cycle(range(args.recipients))
    bodies = (request_body(args.channel, n) for n in recipients)
    start_at = time.perf_counter()
    window_start = start_at + args.warmup
    stop_at = window_start + args.duration
    result = LoadResult(window_start=window_start, window_end=stop_at)

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    headers = {"X-API-Key": args.api_key}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        if args.rate is None:
            tasks = await closed_loop(session, url, bodies, args.concurrency, stop_at, result)
        else:
            tasks = await open_loop(
                session, url, bodies, args.rate, args.concurrency, start_at, stop_at, result
            )
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=args.timeout + END_WAIT_SLACK_SECONDS)
            for task in pending:
                task.cancel()
            # Let the cancellations finish before the session closes under them.
            await asyncio.gather(*pending, return_exceptions=True)
            result.unfinished = len(pending)
    return result


def summarize(result: LoadResult, args: argparse.Namespace) -> dict[str, Any]:
    """The report as plain data: the table and ``--json`` show the same numbers."""
    measured = result.window_end - result.window_start
    latencies = sorted(result.latencies)
    latency_ms: dict[str, float | None] = {}
    for percentile in PERCENTILES:
        latency_ms[f"p{percentile}"] = nearest_rank(latencies, percentile) * 1000 if latencies else None
    latency_ms["max"] = latencies[-1] * 1000 if latencies else None
    summary: dict[str, Any] = {
        "url": args.url.rstrip("/") + ENDPOINT_PATH,
        "mode": "closed" if args.rate is None else "open",
        "concurrency": args.concurrency,
        "rate": args.rate,
        "requests_sent": result.sent,
        "timeout_s": args.timeout,
        "requests_measured": (
            sum(result.statuses.values()) + result.timed_out + sum(result.errors.values())
        ),
        "duration_measured_s": measured,
        "accepted": result.statuses[ACCEPTED],
        "throughput_accepted_per_s": result.statuses[ACCEPTED] / measured,
        "latency_ms": latency_ms,
        "slowest_answer_ms": result.slowest_answer * 1000,
        "status_counts": dict(sorted(result.statuses.items())),
        "refused": sum(result.statuses[status] for status in REFUSED),
        "refused_by_status": {status: result.statuses[status] for status in REFUSED},
        "timed_out": result.timed_out,
        "errors": dict(sorted(result.errors.items())),
        "unfinished": result.unfinished,
    }
    if args.rate is not None:
        summary["late"] = result.late
        summary["dropped"] = result.dropped
    return summary


def format_table(summary: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    mode = summary["mode"]
    if mode == "closed":
        load = f"concurrency {summary['concurrency']}"
    else:
        load = f"rate {summary['rate']:g}/s, max in flight {summary['concurrency']}"
    rows = [
        ("target", summary["url"]),
        ("load", f"{mode} loop, {load}"),
        ("requests sent", f"{summary['requests_sent']} (incl. warmup)"),
        ("requests measured", str(summary["requests_measured"])),
        ("duration measured", f"{summary['duration_measured_s']:.2f} s"),
        ("accepted (202)", str(summary["accepted"])),
        ("throughput (202/s)", f"{summary['throughput_accepted_per_s']:.1f}"),
    ]
    rows += [(f"202 latency {name}", ms(value)) for name, value in summary["latency_ms"].items()]
    rows.append(("slowest answer (any)", ms(summary["slowest_answer_ms"])))
    refused = ", ".join(f"{count} x {status}" for status, count in summary["refused_by_status"].items())
    rows += [
        ("status counts", str(summary["status_counts"])),
        ("refused", f"{summary['refused']} ({refused})"),
        ("timed out", f"{summary['timed_out']} (after {summary['timeout_s']:g} s)"),
        ("other errors", str(summary["errors"])),
        ("unfinished at end", str(summary["unfinished"])),
    ]
    if mode == "open":
        rows += [("late", str(summary["late"])), ("dropped (cap hit)", str(summary["dropped"]))]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="worker base URL")
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"tenant API key (default: ${API_KEY_ENV})",
    )
    parser.add_argument("--duration", type=positive_float, default=30.0, help="measured seconds")
    parser.add_argument("--warmup", type=non_negative_float, default=3.0, help="seconds not counted")
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=32,
        help="clients in the closed loop; with --rate, the cap on requests in flight",
    )
    parser.add_argument("--rate", type=positive_float, help="requests per second (open loop)")
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_REQUEST_TIMEOUT_SECONDS,
        help="seconds one request may take before it counts as timed out; also how long the "
        "run waits for the requests in flight at the end",
    )
    parser.add_argument("--channel", default="inapp", choices=("email", "sms", "push", "inapp"))
    parser.add_argument(
        "--recipients", type=positive_int, default=1000, help="distinct recipient ids to cycle over"
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a --url that is not a loopback address"
    )
    args = parser.parse_args(argv)

    if not args.api_key:
        parser.error(f"--api-key is required (or set {API_KEY_ENV})")
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        parser.error(f"--url must be an http(s) URL with a host, got {args.url!r}")
    if not args.allow_remote and not is_loopback_host(parts.hostname):
        parser.error(
            f"--url host {parts.hostname!r} is not a loopback address; "
            "load tests may only target this machine (pass --allow-remote to override)"
        )
    if args.channel == "sms" and args.recipients > 10**SMS_SUFFIX_DIGITS:
        most = 10**SMS_SUFFIX_DIGITS
        parser.error(f"--recipients may be at most {most} for sms (the phone number's last digits)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = summarize(asyncio.run(run_load(args)), args)
    print(json.dumps(summary) if args.json else format_table(summary))
    return 0 if summary["status_counts"].get(ACCEPTED) else EXIT_NO_SUCCESS


if __name__ == "__main__":
    sys.exit(main())
