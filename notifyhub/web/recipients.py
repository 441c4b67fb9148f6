"""What a tenant tells NotifyHub about its recipients: preferences, device tokens, profiles."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from faust.web import View
from pydantic import AfterValidator, EmailStr, Field, StringConstraints

from notifyhub.app import app, publish_all, resources, topics
from notifyhub.db import recipients
from notifyhub.model.channels import Channel
from notifyhub.model.messages import (
    CATEGORY_PATTERN,
    HHMM_PATTERN,
    MAX_FREQUENCY_CAP,
    MAX_FREQUENCY_WINDOW_MINUTES,
    Locale,
    Message,
)
from notifyhub.services.preferences import Preferences
from notifyhub.web.auth import authenticate_tenant
from notifyhub.web.inputs import parse_body
from notifyhub.web.responses import ApiError, ok

MAX_USER_ID_LENGTH = 255


def _iana_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA timezone name (e.g. Europe/Paris)") from None
    return name


Timezone = Annotated[str, AfterValidator(_iana_timezone)]
ClockTime = Annotated[str, StringConstraints(pattern=HHMM_PATTERN)]


class PreferencePut(Message):
    enabled: bool = True  # omitted means enabled: NotifyHub's zero value turned channels off
    quiet_hours_start: ClockTime | None = None
    quiet_hours_end: ClockTime | None = None
    frequency_cap: int | None = Field(default=None, ge=1, le=MAX_FREQUENCY_CAP)
    frequency_window_minutes: int = Field(default=60, ge=1, le=MAX_FREQUENCY_WINDOW_MINUTES)
    # Omitted: the recipient profile's timezone when it has one, else UTC.
    timezone: Timezone | None = None


class DeviceTokenCreate(Message):
    user_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4096)]
    platform: Literal["ios", "android", "web"]


class ProfilePut(Message):
    email: EmailStr | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = None
    locale: Locale | None = None
    timezone: Timezone | None = None


def _user_id(raw: str) -> str:
    if not raw or len(raw) > MAX_USER_ID_LENGTH:
        raise ApiError(
            "VALIDATION_ERROR", "invalid user id", {"user_id": f"1 to {MAX_USER_ID_LENGTH} characters"}
        )
    return raw


def _channel(raw: str) -> Channel:
    if raw not in set(Channel):
        raise ApiError(
            "VALIDATION_ERROR", "invalid channel", {"channel": f"one of {', '.join(Channel)}"}
        )
    return Channel(raw)


preferences = Preferences(resources, publish_all, topics)


@app.page("/api/v1/users/{user_id}/preferences")
class PreferencesView(View):
    async def get(self, request: web.Request, user_id: str) -> web.Response:
        caller = await authenticate_tenant(request)
        rows = await recipients.preferences(await resources.db(), caller.tenant_id, _user_id(user_id))
        return ok(request, [dict(row) for row in rows])


@app.page("/api/v1/users/{user_id}/preferences/{channel}")
class PreferenceView(View):
    async def put(self, request: web.Request, user_id: str, channel: str) -> web.Response:
        caller = await authenticate_tenant(request)
        user, chosen = _user_id(user_id), _channel(channel)
        wanted = await parse_body(request, PreferencePut, "preference")
        if (wanted.quiet_hours_start is None) != (wanted.quiet_hours_end is None):
            missing = "quiet_hours_end" if wanted.quiet_hours_end is None else "quiet_hours_start"
            raise ApiError(
                "VALIDATION_ERROR",
                "invalid preference",
                {missing: "quiet hours need both a start and an end"},
            )
        row = await preferences.put(caller.tenant_id, user, chosen, wanted.model_dump())
        return ok(request, dict(row))

    async def delete(self, request: web.Request, user_id: str, channel: str) -> web.Response:
        caller = await authenticate_tenant(request)
        user, chosen = _user_id(user_id), _channel(channel)
        # A 204 whether or not there was one, as NotifyHub answers. Announced every time: a
        # retried delete also repairs a pipeline table the first announcement never reached.
        await preferences.delete(caller.tenant_id, user, chosen)
        return web.Response(status=204)


class CategoryPreferencePut(Message):
    enabled: bool


def _category(raw: str) -> str:
    if not re.fullmatch(CATEGORY_PATTERN, raw):
        raise ApiError(
            "VALIDATION_ERROR",
            "invalid category",
            {"category": "1 to 64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit"},
        )
    return raw


@app.page("/api/v1/users/{user_id}/preferences/{channel}/categories")
class CategoryPreferencesView(View):
    async def get(self, request: web.Request, user_id: str, channel: str) -> web.Response:
        caller = await authenticate_tenant(request)
        rows = await recipients.category_preferences(
            await resources.db(), caller.tenant_id, _user_id(user_id), _channel(channel)
        )
        return ok(request, [dict(row) for row in rows])


@app.page("/api/v1/users/{user_id}/preferences/{channel}/categories/{category}")
class CategoryPreferenceView(View):
    """One category of a channel on or off (a notification carries its ``category``)."""

    async def put(self, request: web.Request, user_id: str, channel: str, category: str) -> web.Response:
        caller = await authenticate_tenant(request)
        user, chosen, named = _user_id(user_id), _channel(channel), _category(category)
        wanted = await parse_body(request, CategoryPreferencePut, "category preference")
        row = await preferences.put_category(caller.tenant_id, user, chosen, named, wanted.enabled)
        return ok(request, dict(row))

    async def delete(
        self, request: web.Request, user_id: str, channel: str, category: str
    ) -> web.Response:
        caller = await authenticate_tenant(request)
        user, chosen, named = _user_id(user_id), _channel(channel), _category(category)
        await preferences.delete_category(caller.tenant_id, user, chosen, named)
        return web.Response(status=204)


@app.page("/api/v1/device-tokens")
class DeviceTokensView(View):
    async def post(self, request: web.Request) -> web.Response:
        caller = await authenticate_tenant(request)
        wanted = await parse_body(request, DeviceTokenCreate, "device token")
        row = await recipients.register_device_token(
            await resources.db(), caller.tenant_id, wanted.user_id, wanted.token, wanted.platform
        )
        return ok(request, dict(row), status=201)


@app.page("/api/v1/device-tokens/{token}")
class DeviceTokenView(View):
    async def delete(self, request: web.Request, token: str) -> web.Response:
        caller = await authenticate_tenant(request)
        # A 204 for an unknown or inactive token too, as NotifyHub answers: the token is
        # not active afterwards either way.
        await recipients.deactivate_device_token(await resources.db(), caller.tenant_id, token)
        return web.Response(status=204)


@app.page("/api/v1/users/{user_id}")
class ProfileView(View):
    async def get(self, request: web.Request, user_id: str) -> web.Response:
        caller = await authenticate_tenant(request)
        row = await recipients.profile(await resources.db(), caller.tenant_id, _user_id(user_id))
        if row is None:
            raise ApiError("NOT_FOUND", "user profile not found")
        return ok(request, dict(row))

    async def put(self, request: web.Request, user_id: str) -> web.Response:
        caller = await authenticate_tenant(request)
        wanted = await parse_body(request, ProfilePut, "user profile")
        row = await recipients.put_profile(
            await resources.db(), caller.tenant_id, _user_id(user_id), wanted.model_dump()
        )
        return ok(request, dict(row))

    async def delete(self, request: web.Request, user_id: str) -> web.Response:
        caller = await authenticate_tenant(request)
        if not await recipients.delete_profile(
            await resources.db(), caller.tenant_id, _user_id(user_id)
        ):
            raise ApiError("NOT_FOUND", "user profile not found")
        return web.Response(status=204)
