"""``/api/v1/suppressions``: the addresses a tenant's notifications are not sent to.

Hard bounces and complaints add to it (provider receipts), and so does the tenant. Every
tenant's list also shows the SMS numbers that texted STOP to the shared sender (scope
"all tenants"), whether the STOP reached us or only Twilio (which then refuses a send
with 21610): those leave it only when the number texts START.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from faust.web import View
from pydantic import StringConstraints, ValidationInfo, field_validator

from notifyhub.app import app, resources
from notifyhub.db import suppressions
from notifyhub.model.channels import Channel
from notifyhub.model.messages import Message, OneLine, channel_address
from notifyhub.web.auth import authenticate_tenant
from notifyhub.web.inputs import page_of, parse_body
from notifyhub.web.responses import ApiError, ok


class SuppressionCreate(Message):
    channel: Literal["email", "sms"]
    address: OneLine
    reason: Annotated[str, StringConstraints(min_length=1, max_length=255)] = "added by the tenant"

    @field_validator("address")
    @classmethod
    def _an_address_of_the_channel(cls, address: str, info: ValidationInfo) -> str:
        channel = info.data.get("channel")
        return channel_address(Channel(channel), address) if channel else address


def _channel(raw: str) -> Channel:
    if raw not in {c.value for c in suppressions.SUPPRESSIBLE}:
        raise ApiError("VALIDATION_ERROR", "invalid channel", {"channel": "email or sms"})
    return Channel(raw)


@app.page("/api/v1/suppressions")
class SuppressionsView(View):
    async def get(self, request: web.Request) -> web.Response:
        caller = await authenticate_tenant(request)
        page = page_of(request)
        raw = request.query.get("channel")
        rows, total = await suppressions.page(
            await resources.db(),
            caller.tenant_id,
            _channel(raw) if raw else None,
            page.per_page,
            page.offset,
        )
        return ok(request, [suppressions.as_api_dict(r) for r in rows], **page.meta(total))

    async def post(self, request: web.Request) -> web.Response:
        caller = await authenticate_tenant(request)
        wanted = await parse_body(request, SuppressionCreate, "suppression")
        row = await suppressions.add(
            await resources.db(),
            suppressions.Suppression(
                caller.tenant_id, Channel(wanted.channel), wanted.address, wanted.reason, "api"
            ),
        )
        return ok(request, suppressions.as_api_dict(row), status=201)


@app.page("/api/v1/suppressions/{channel}/{address}")
class SuppressionView(View):
    async def delete(self, request: web.Request, channel: str, address: str) -> web.Response:
        caller = await authenticate_tenant(request)
        removed = await suppressions.remove(
            await resources.db(), caller.tenant_id, _channel(channel), address
        )
        if not removed:
            raise ApiError("NOT_FOUND", "this address is not on the tenant's suppression list")
        return web.Response(status=204)
