"""The ``notifyhub`` command: ``worker``, ``migrate`` and ``seed``; and for operators
``events tail``, ``dlq list|replay`` and ``lag`` (``operator_commands.py``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from notifyhub.settings import InsecureSecret, get_settings


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
    from notifyhub import logs, tracing
    from notifyhub.faust_app import NotifyHubWorker
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

    from notifyhub.operator_commands import register

    register(commands)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
