"""A local webhook receiver for tests: records every request, answers 2xx or a scripted error."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from tests.support.servers import serve


class WebhookReceiver:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._failures: list[int] = []
        self._runner: web.AppRunner | None = None

    def fail_next(self, count: int, status: int = 500) -> None:
        self._failures.extend([status] * count)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._receive)
        self._runner, self.url = await serve(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = self._failures.pop(0) if self._failures else 200
        self.requests.append(
            {
                "path": request.path,
                "headers": dict(request.headers),
                "body": body,
                "answered": answer,
                "received_at": time.time(),
            }
        )
        return web.Response(status=answer, text="ok" if answer == 200 else "scripted failure")
