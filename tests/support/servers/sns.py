"""SNS's side of the certificate fetch and the subscription confirmation, on loopback: the
signing certificate at any path, and a record of every GET (a SubscribeURL visited).

The worker checks that a SigningCertURL is on SNS's https host, then fetches it from here
(``NOTIFYHUB_SNS_CERTIFICATE_BASE_URL``), as the Twilio and SES fakes stand in for theirs.
"""

from __future__ import annotations

from aiohttp import web

from tests.support.servers import serve


class FakeSnsHost:
    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.requests: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    def env(self) -> dict[str, str]:
        return {"NOTIFYHUB_SNS_CERTIFICATE_BASE_URL": self.url}

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._get)
        self._runner, self.url = await serve(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _get(self, request: web.Request) -> web.Response:
        self.requests.append(str(request.rel_url))
        if request.query.get("Action") == "ConfirmSubscription":
            return web.Response(text="<ConfirmSubscriptionResponse/>", content_type="text/xml")
        return web.Response(body=self.pem, content_type="application/x-pem-file")
