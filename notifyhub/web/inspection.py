"""``/internal/tables/...``: what the pipeline's tables hold for one recipient, right now.

Operators see the preferences, frequency-cap counters and held notifications that the
worker owning the recipient's partition is working with. Any worker can be asked: the
request is forwarded to the owner (one hop, GET only, so nothing is lost on the way;
Faust's own ``table_route`` proxy drops request bodies and response headers).
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from faust.web import View

from notifyhub.app import app
from notifyhub.model.keys import recipient_key
from notifyhub.tables.frequency_caps import counters_for
from notifyhub.tables.held import held_table
from notifyhub.tables.preferences import preferences_for, preferences_table
from notifyhub.web.auth import authenticate_admin
from notifyhub.web.inputs import parse_uuid
from notifyhub.web.responses import REQUEST_ID_KEY, ApiError, ok

# Marks a forwarded request, so that a stale routing table can never bounce it around.
FORWARDED_HEADER = "X-NotifyHub-Forwarded"
FORWARD_TIMEOUT_SECONDS = 5.0


def _same_worker(url: object) -> bool:
    return str(url).rstrip("/") == str(app.conf.canonical_url).rstrip("/")


async def _forward(request: web.Request, owner: object) -> web.Response:
    headers = {
        "X-Admin-Token": request.headers.get("X-Admin-Token", ""),
        "X-Request-ID": request.get(REQUEST_ID_KEY, ""),
        FORWARDED_HEADER: "1",
    }
    timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{str(owner).rstrip('/')}{request.path_qs}", headers=headers) as answer,
        ):
            return web.Response(
                body=await answer.read(), status=answer.status, content_type="application/json"
            )
    except (aiohttp.ClientError, TimeoutError):
        raise ApiError(
            "SERVICE_UNAVAILABLE",
            f"the worker owning this recipient ({owner}) did not answer",
            headers={"Retry-After": "5"},
        ) from None


@app.page("/internal/tables/{tenant_id}/recipients/{recipient_id}")
class RecipientStateView(View):
    async def get(self, request: web.Request, tenant_id: str, recipient_id: str) -> web.Response:
        authenticate_admin(request)
        tenant = parse_uuid(tenant_id, "tenant_id")
        key = recipient_key(tenant, recipient_id)
        owner = app.router.key_store(preferences_table.name, key)
        if not _same_worker(owner) and FORWARDED_HEADER not in request.headers:
            return await _forward(request, owner)
        return ok(
            request,
            {
                "tenant_id": tenant,
                "recipient_id": recipient_id,
                "worker": str(app.conf.canonical_url),
                "preferences": preferences_for(key),
                "frequency_caps": counters_for(key),
                "held": [entry._asdict() for entry in held_table.held_for(key)],
            },
        )
