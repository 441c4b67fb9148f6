"""The operator's subcommands of ``notifyhub``: tail delivery events, show a notification's
delivery log, list and replay dead letters, show consumer lag.

- ``events tail`` reads the delivery-events topic straight from Kafka, as a consumer outside
  the workers' group (it never moves their offsets).
- ``events show`` reads one notification's delivery log from PostgreSQL, the system of
  record (the topic keeps events only for its retention).
- ``dlq`` goes through a worker's admin API (``/internal/dlq``), so a replay is the same
  one-time, audited operation as over HTTP; ``--url`` and ``NOTIFYHUB_ADMIN_TOKEN`` say
  which worker and how to authenticate.
- ``lag`` asks the broker for the group's committed and end offsets.

Output is for people: one line per item, progress on long runs, on standard output;
problems on standard error with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TextIO

import aiohttp
from aiokafka import AIOKafkaConsumer

from notifyhub.observability.lag import LagMeter, PartitionLag, by_topic
from notifyhub.runtime.settings import Settings, get_settings

# How long the admin API gets per request before the command gives up.
ADMIN_TIMEOUT_SECONDS = 30.0
# The admin API's page size cap.
DLQ_PAGE = 100
# A notification has a few log entries, dozens with retries; past this many, ``events
# show`` says how many it left out rather than flood the terminal.
EVENTS_SHOWN = 1000


class OperatorError(Exception):
    """A problem the operator must fix (unreachable worker, refused token...)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the operator subcommands to the ``notifyhub`` parser."""
    events = commands.add_parser("events", help="delivery events (tail, show)")
    events_commands = events.add_subparsers(dest="events_command", required=True)
    tail = events_commands.add_parser("tail", help="print delivery events as they happen")
    tail.add_argument("--tenant", help="only this tenant's events")
    tail.add_argument("--notification", help="only this notification's events")
    tail.add_argument("--status", help="only events with this status (delivered, failed...)")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest retained event")
    tail.add_argument("--count", type=int, help="stop after this many events")
    tail.add_argument("--idle-timeout", type=float, help="stop after this many quiet seconds")
    tail.add_argument("--json", action="store_true", help="print each event as JSON")
    tail.set_defaults(run=lambda args: _run(_tail_events(args, get_settings())))
    timeline = events_commands.add_parser(
        "show", help="one notification's delivery log, oldest first (from PostgreSQL)"
    )
    timeline.add_argument("--tenant", required=True, help="the notification's tenant id")
    timeline.add_argument("notification", help="the notification id")
    timeline.set_defaults(run=lambda args: _run(_show_events(args, get_settings())))

    dlq = commands.add_parser("dlq", help="dead letters (through a worker's admin API)")
    dlq.add_argument("--url", help="a worker's base URL (default: NOTIFYHUB_WEB_HOST:PORT)")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    show = dlq_commands.add_parser("list", help="list dead letters, newest first")
    _dlq_filters(show)
    show.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    show.set_defaults(run=lambda args: _run(_list_letters(args, get_settings())))
    replay = dlq_commands.add_parser("replay", help="replay dead letters (each at most once)")
    replay.add_argument("ids", nargs="*", help="dead letter ids")
    replay.add_argument(
        "--all", action="store_true", help="every unreplayed letter matching the filters"
    )
    _dlq_filters(replay)
    replay.set_defaults(run=lambda args: _run(_replay_letters(args, get_settings())))

    lag = commands.add_parser("lag", help="consumer lag of the workers' group, per topic")
    lag.add_argument("--partitions", action="store_true", help="one line per partition")
    lag.add_argument("--watch", type=float, metavar="SECONDS", help="repeat every SECONDS")
    lag.set_defaults(run=lambda args: _run(_show_lag(args, get_settings())))


def _dlq_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="only this tenant's letters")
    parser.add_argument("--channel", help="only this channel's letters")


def _run(command: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(command)
    except OperatorError as exc:
        print(f"notifyhub: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# --- events tail ----------------------------------------------------------------------


def _matches(event: dict[str, Any], args: argparse.Namespace) -> bool:
    return (
        (args.tenant is None or event.get("tenant_id") == args.tenant)
        and (args.notification is None or event.get("notification_id") == args.notification)
        and (args.status is None or event.get("status") == args.status)
    )


def format_event(event: dict[str, Any]) -> str:
    """One line: when, status, channel, notification, tenant, and provider or reason."""
    at = event.get("occurred_at", "")
    detail = event.get("provider") or ""
    if event.get("reason"):
        detail = f"{detail} {event['reason']}".strip()
    return (
        f"{at}  {event.get('status', '?'):<10} {event.get('channel', '?'):<6} "
        f"{event.get('notification_id', '?')}  tenant {event.get('tenant_id', '?')}"
        f"{'  ' + detail if detail else ''}"
    )


async def _tail_events(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    consumer = AIOKafkaConsumer(
        settings.topic("delivery-events"),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        enable_auto_commit=False,
    )
    try:
        await consumer.start()
    except Exception as exc:
        raise OperatorError(f"Kafka at {settings.kafka_bootstrap_servers}: {exc!r}") from exc
    shown = seen = 0
    last_seen = time.monotonic()
    try:
        print(f"tailing {settings.topic('delivery-events')} (Ctrl-C stops)", file=sys.stderr)
        while args.count is None or shown < args.count:
            batches = await consumer.getmany(timeout_ms=500)
            records = [record for batch in batches.values() for record in batch]
            if not records:
                if args.idle_timeout and time.monotonic() - last_seen > args.idle_timeout:
                    break
                continue
            last_seen = time.monotonic()
            for record in records:
                seen += 1
                try:
                    event = json.loads(record.value)
                except (TypeError, ValueError):
                    continue
                if not isinstance(event, dict) or not _matches(event, args):
                    continue
                print(json.dumps(event) if args.json else format_event(event), file=out, flush=True)
                shown += 1
                if args.count is not None and shown >= args.count:
                    break
    finally:
        await consumer.stop()
        print(f"{shown} shown of {seen} events read", file=sys.stderr)
    return 0


# --- events show ----------------------------------------------------------------------


def format_log_entry(entry: dict[str, Any]) -> str:
    """One line: when, status, attempt, then the occurrence (an escalation step), provider,
    provider message id, locale and reason when there are any."""
    details = [
        entry.get("event") and f"[{entry['event']}]",
        entry["provider"],
        entry["provider_message_id"] and f"message {entry['provider_message_id']}",
        entry["locale"] and f"locale {entry['locale']}",
        entry["reason"],
    ]
    detail = "  ".join(d for d in details if d)
    return (
        f"{entry['occurred_at'].isoformat()}  {entry['status']:<10} attempt {entry['attempt']}"
        f"{'  ' + detail if detail else ''}"
    )


async def _show_events(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    from notifyhub.db import create_pool, notifications

    try:
        tenant_id, notification_id = uuid.UUID(args.tenant), uuid.UUID(args.notification)
    except ValueError:
        raise OperatorError("--tenant and the notification must be UUIDs") from None
    try:
        pool = await create_pool(settings)
    except Exception as exc:
        raise OperatorError(f"PostgreSQL (DATABASE_URL): {exc!r}") from exc
    try:
        found = await notifications.delivery_log_page(pool, tenant_id, notification_id, EVENTS_SHOWN, 0)
    finally:
        await pool.close()
    if found is None:
        raise OperatorError(f"tenant {tenant_id} has no notification {notification_id}")
    entries, total = found
    for entry in entries:
        print(format_log_entry(dict(entry)), file=out)
    left_out = f" ({total - len(entries)} more not shown)" if total > len(entries) else ""
    print(
        f"{total} events of notification {notification_id}, tenant {tenant_id}{left_out}",
        file=sys.stderr,
    )
    return 0


# --- dlq --------------------------------------------------------------------------------


class AdminApi:
    """A worker's admin API, authenticated with the admin token."""

    def __init__(self, base_url: str, token: str, tenant: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"X-Admin-Token": token}
        if tenant:
            headers["X-Tenant-ID"] = tenant
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=ADMIN_TIMEOUT_SECONDS)
        )

    async def __aenter__(self) -> AdminApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        try:
            async with self._session.request(method, f"{self.base_url}{path}", **kwargs) as response:
                body = await response.json(content_type=None) if response.content_length != 0 else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OperatorError(f"no answer from {self.base_url}: {exc!r}") from exc
        if response.status in (401, 403):
            raise OperatorError(f"{self.base_url} refused the admin token (NOTIFYHUB_ADMIN_TOKEN)")
        return response.status, body or {}

    async def letters(self, channel: str | None, unreplayed: bool, limit: int) -> list[dict[str, Any]]:
        """Dead letters, newest first, page by page (at most ``limit``)."""
        found: list[dict[str, Any]] = []
        offset = 0
        while len(found) < limit:
            query = {"limit": str(min(DLQ_PAGE, limit - len(found))), "offset": str(offset)}
            if channel:
                query["channel"] = channel
            if unreplayed:
                query["unreplayed"] = "true"
            status, body = await self.call("GET", "/internal/dlq", params=query)
            if status != 200:
                raise OperatorError(_problem(status, body))
            page = body.get("data", [])
            found.extend(page)
            offset += len(page)
            if len(page) == 0 or offset >= body.get("meta", {}).get("total", 0):
                break
        return found


def _problem(status: int, body: dict[str, Any]) -> str:
    error = body.get("error", {})
    return f"{status} {error.get('code', '')}: {error.get('message', body)}"


def _admin(args: argparse.Namespace, settings: Settings) -> AdminApi:
    url = args.url or f"http://{settings.web_host}:{settings.web_port}"
    return AdminApi(url, settings.admin_token.get_secret_value(), args.tenant)


async def _list_letters(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    async with _admin(args, settings) as api:
        letters = await api.letters(args.channel, unreplayed=False, limit=args.limit)
    for letter in letters:
        replayed = f"replayed {letter['replayed_at']}" if letter.get("replayed_at") else "waiting"
        print(
            f"{letter['id']}  {letter['created_at']}  {letter.get('channel') or '-':<6} "
            f"tenant {letter['tenant_id']}  attempts {letter.get('attempts') or '-'}  "
            f"{replayed}\n    {letter['source_topic']}: {letter['reason']}",
            file=out,
        )
    print(f"{len(letters)} dead letters", file=sys.stderr)
    return 0


async def _replay_letters(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    if bool(args.ids) == bool(args.all):
        raise OperatorError("name dead letter ids, or --all (with --tenant/--channel filters)")
    async with _admin(args, settings) as api:
        ids = (
            args.ids
            if args.ids
            else [
                letter["id"] for letter in await api.letters(args.channel, unreplayed=True, limit=10**9)
            ]
        )
        if not ids:
            print("no unreplayed dead letters match", file=out)
            return 0
        replayed = failed = 0
        for done, letter_id in enumerate(ids, start=1):
            status, body = await api.call("POST", f"/internal/dlq/{letter_id}/replay")
            if status == 200:
                replayed += 1
            else:
                failed += 1
                print(f"{letter_id}: {_problem(status, body)}", file=sys.stderr)
            _progress(f"replayed {replayed}, refused {failed}, {done}/{len(ids)}", out)
    print(file=out)
    return 0 if failed == 0 else 1


def _progress(line: str, out: TextIO) -> None:
    """Rewrite one status line in place on a terminal; one line per step otherwise."""
    if out.isatty():
        print(f"\r{line}", end="", file=out, flush=True)
    else:
        print(line, file=out, flush=True)


# --- lag --------------------------------------------------------------------------------


def format_lag(lags: list[PartitionLag], per_partition: bool) -> list[str]:
    if per_partition:
        lines = []
        for lag in lags:
            committed = "-" if lag.committed is None else str(lag.committed)
            lines.append(
                f"{lag.topic:<50} {lag.partition:>4} {committed:>10} {lag.end:>10} {lag.lag:>8}"
            )
        return lines
    return [f"{topic:<50} {total:>8}" for topic, total in sorted(by_topic(lags).items())]


async def _show_lag(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    meter = LagMeter(settings.kafka_bootstrap_servers, settings.app_id)
    try:
        while True:
            try:
                lags = await meter.measure(topic_prefix=f"{settings.topic_prefix}.")
            except Exception as exc:
                raise OperatorError(f"Kafka at {settings.kafka_bootstrap_servers}: {exc!r}") from exc
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            header = "topic partition committed end lag" if args.partitions else "topic lag"
            print(f"{stamp}  group {settings.app_id}  ({header})", file=out)
            for line in format_lag(lags, args.partitions) or ["(the group has committed nothing)"]:
                print(line, file=out)
            print(f"total lag {sum(lag.lag for lag in lags)}", file=out, flush=True)
            if args.watch is None:
                return 0
            await asyncio.sleep(args.watch)
    finally:
        await meter.close()
