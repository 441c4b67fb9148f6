"""``/internal/tenants/{id}/quota``: a tenant's notifications per second (admin token)."""

from __future__ import annotations

from aiohttp import web
from faust.web import View
from pydantic import Field

from notifyhub.app import app, resources, settings
from notifyhub.db import quotas
from notifyhub.model.messages import Message
from notifyhub.services.quotas import RATE_CACHE_SECONDS
from notifyhub.web.auth import authenticate_admin
from notifyhub.web.inputs import parse_body, parse_uuid
from notifyhub.web.responses import ApiError, ok


class QuotaUpdate(Message):
    # None: back to the deployment's default.
    notifications_per_second: int | None = Field(default=None, ge=1, le=1_000_000)


def _answer(tenant_id: object, own: int | None) -> dict[str, object]:
    return {
        "tenant_id": tenant_id,
        "notifications_per_second": own or settings.tenant_notifications_per_second,
        "is_default": own is None,
        "takes_effect_within_seconds": RATE_CACHE_SECONDS,
    }


@app.page("/internal/tenants/{tenant_id}/quota")
class TenantQuotaView(View):
    async def get(self, request: web.Request, tenant_id: str) -> web.Response:
        authenticate_admin(request)
        tenant = parse_uuid(tenant_id, "tenant_id")
        found, own = await quotas.tenant_rate(await resources.db(), tenant)
        if not found:
            raise ApiError("NOT_FOUND", "tenant not found")
        return ok(request, _answer(tenant, own))

    async def put(self, request: web.Request, tenant_id: str) -> web.Response:
        authenticate_admin(request)
        tenant = parse_uuid(tenant_id, "tenant_id")
        wanted = await parse_body(request, QuotaUpdate, "quota")
        if not await quotas.set_notifications_per_second(
            await resources.db(), tenant, wanted.notifications_per_second
        ):
            raise ApiError("NOT_FOUND", "tenant not found")
        return ok(request, _answer(tenant, wanted.notifications_per_second))
