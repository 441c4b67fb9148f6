"""The ``notifyhub`` command: ``worker``, ``migrate``, ``seed`` and ``inbox-url``; and for
operators ``events tail|show``, ``dlq list|replay`` and ``lag`` (``operator_commands.py``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import aiohttp

from notifyhub.runtime.settings import InsecureSecret, get_settings

# How long the worker gets to sign an inbox token before ``inbox-url`` gives up.
INBOX_URL_TIMEOUT_SECONDS = 10.0


def _worker(args: argparse.Namespace) -> int:
    # Command-line options are settings too: put them in the environment before the
    # settings are first read (the app reads them at import).
    if args.web_port is not None:
        os.environ["NOTIFYHUB_WEB_PORT"] = str(args.web_port)
    if args.data_dir is not None:
        os.environ["NOTIFYHUB_DATA_DIR"] = args.data_dir
    get_settings.cache_clear()
    # Before anything starts: a worker with a known secret would accept forged admin
    # requests and inbox tokens, and encrypt webhook secrets under a public key.
    try:
        get_settings().refuse_insecure_secrets()
    except InsecureSecret as exc:
        print(f"notifyhub worker: {exc}", file=sys.stderr)
        return 2
    from notifyhub.kafka.faust_app import NotifyHubWorker
    from notifyhub.observability import logs, tracing
    from notifyhub.worker import load_app

    app = load_app()
    settings = get_settings()
    from notifyhub.agents.send import dispatchers
    from notifyhub.providers import ProviderConfigError

    try:
        dispatchers.build()
    except ProviderConfigError as exc:
        print(f"notifyhub worker: {exc}", file=sys.stderr)
        return 2
    tracing.configure(settings.trace_exporter, instance=str(settings.web_port))
    NotifyHubWorker(
        app,
        loglevel=settings.log_level.upper(),
        logging_config=logs.logging_config(settings.log_level, settings.log_format),
    ).execute_from_commandline()
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from notifyhub.db.migrate import migrate

    applied = asyncio.run(migrate(get_settings().database_url.get_secret_value()))
    print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
    return 0


async def _seed(name: str) -> tuple[str, str]:
    from notifyhub.db import create_pool, tenants

    pool = await create_pool(get_settings())
    try:
        tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE name = $1", name)
        if tenant_id is None:
            tenant_id = (await tenants.create_tenant(pool, name))["id"]
        _, raw_key = await tenants.create_api_key(pool, tenant_id, f"{name} key")
        return str(tenant_id), raw_key
    finally:
        await pool.close()


def _seed_command(args: argparse.Namespace) -> int:
    tenant_id, raw_key = asyncio.run(_seed(args.tenant))
    if args.quiet:
        print(raw_key)
    else:
        print(f"tenant  {args.tenant} ({tenant_id})")
        print(f"api key {raw_key}   (shown once; only its hash is stored)")
    return 0


async def _inbox_token(base_url: str, api_key: str, recipient: str) -> tuple[int, dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=INBOX_URL_TIMEOUT_SECONDS)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(
            f"{base_url}/api/v1/ws-token",
            json={"recipient_id": recipient},
            headers={"X-API-Key": api_key},
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


def _inbox_url_command(args: argparse.Namespace) -> int:
    """Print the browser inbox page's URL for one recipient, with a fresh inbox token from
    the worker (``POST /api/v1/ws-token``, as a tenant's backend gets one)."""
    settings = get_settings()
    base_url = (args.url or f"http://{settings.web_host}:{settings.web_port}").rstrip("/")
    try:
        status, body = asyncio.run(_inbox_token(base_url, args.api_key, args.recipient))
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: not JSON
        reason = str(exc) or f"no answer in {INBOX_URL_TIMEOUT_SECONDS:g} s"
        print(f"notifyhub inbox-url: no token from {base_url}: {reason}", file=sys.stderr)
        return 1
    if status != 200:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        print(
            f"notifyhub inbox-url: {base_url} answered {status} {error.get('code', '')}: "
            f"{error.get('message', body)}",
            file=sys.stderr,
        )
        return 1
    print(f"{base_url}/inbox#token={body['data']['token']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="notifyhub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run a pipeline worker with its HTTP server")
    worker.add_argument("--web-port", type=int, help="HTTP port (NOTIFYHUB_WEB_PORT)")
    worker.add_argument("--data-dir", help="RocksDB data directory (NOTIFYHUB_DATA_DIR)")
    worker.set_defaults(run=_worker)

    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(run=_migrate)

    seed = commands.add_parser("seed", help="create a demo tenant and print a new API key")
    seed.add_argument("--tenant", default="demo", help="tenant name (default: demo)")
    seed.add_argument("--quiet", action="store_true", help="print only the API key")
    seed.set_defaults(run=_seed_command)

    inbox_url = commands.add_parser(
        "inbox-url", help="print a recipient's browser inbox link, with a fresh inbox token"
    )
    inbox_url.add_argument("--api-key", required=True, help="the tenant's API key")
    inbox_url.add_argument("--recipient", default="user-1", help="recipient id (default: user-1)")
    inbox_url.add_argument("--url", help="a worker's base URL (default: NOTIFYHUB_WEB_HOST:PORT)")
    inbox_url.set_defaults(run=_inbox_url_command)

    from notifyhub.cli.operator import register

    register(commands)

    args = parser.parse_args(argv)
    status: int = args.run(args)  # each subcommand's ``run`` returns the exit status
    return status


if __name__ == "__main__":
    sys.exit(main())
