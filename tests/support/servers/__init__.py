"""Local servers speaking the providers' real protocols (SES v2, SMTP, Twilio, FCM HTTP v1),
for the tests and, run standalone (``python -m tests.support.servers.<name>``), the benchmarks."""

from __future__ import annotations

from aiohttp import web


def announce(env: dict[str, str]) -> None:
    """Print the settings that point a worker at a standalone server: ``NAME=value`` lines,
    then a blank line (what ``bench/topology.py`` reads)."""
    for name, value in env.items():
        print(f"{name}={value}", flush=True)
    print(flush=True)


async def serve(app: web.Application, port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on 127.0.0.1 (on a free port unless ``port`` is given): its runner,
    to clean up when done, and its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
