"""Talking to a worker as a tenant does: its HTTP API, polled until the pipeline gets there."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.workers import Worker

T = TypeVar("T")

# How long a test waits for the pipeline to reach an expected state.
PIPELINE_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, within: float = PIPELINE_TIMEOUT_SECONDS
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``within`` s."""
    deadline = asyncio.get_running_loop().time() + within
    last: T | None = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out after {within}s waiting for {what} (last seen: {last!r})")


async def call(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    """One HTTP request: its status and JSON body (None when it has none; the text when it
    is not JSON, as the unsubscribe pages)."""
    async with http.request(method, url, **kwargs) as response:
        text = await response.text()
        if not text:
            return response.status, None
        if response.content_type != "application/json":
            return response.status, text
        return response.status, json.loads(text)


async def send_notification(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, **request: Any
) -> dict[str, Any]:
    """POST one notification; it must be accepted (202). The notification as answered."""
    status, body = await call(
        http, "POST", f"{worker.base_url}/api/v1/notifications", json=request, headers=tenant.headers
    )
    assert status == 202, body
    return cast(dict[str, Any], body["data"])


# The starter template "otp" needs a ``code``: sent without one, it fails in rendering.
FAILING = {"template_id": "otp", "payload": {}}


async def send_sms(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, **request: object
) -> dict[str, Any]:
    """An SMS, accepted (the shared worker sinks it)."""
    return await send_notification(
        http, worker, tenant, channel="sms", recipient_id="r", recipient_address="+15550100", **request
    )


async def notification_of(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, notification_id: str
) -> dict[str, Any]:
    _, body = await call(
        http,
        "GET",
        f"{worker.base_url}/api/v1/notifications/{notification_id}",
        headers=tenant.headers,
    )
    return cast(dict[str, Any], body["data"])


async def activity_feed(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, notification_id: str
) -> list[dict[str, Any]]:
    """The notification's activity feed (its delivery log), first page."""
    _, body = await call(
        http,
        "GET",
        f"{worker.base_url}/api/v1/notifications/{notification_id}/events",
        headers=tenant.headers,
    )
    return cast(list[dict[str, Any]], body["data"])


FINAL_STATUSES = (
    "sent",
    "delivered",
    "undelivered",
    "bounced",
    "complained",
    "failed",
    "dropped",
    "cancelled",
    "digested",
)


async def wait_for_status(
    http: aiohttp.ClientSession,
    worker: Worker,
    tenant: Tenant,
    notification_id: str,
    *wanted: str,
) -> dict[str, Any]:
    """Poll the notification until its status is one of ``wanted`` (any final one by default)."""
    statuses = wanted or FINAL_STATUSES

    async def reached() -> dict[str, Any] | None:
        found = await notification_of(http, worker, tenant, notification_id)
        return found if found["status"] in statuses else None

    return await eventually(reached, f"notification {notification_id} to be {'/'.join(statuses)}")


async def metric(http: aiohttp.ClientSession, worker: Worker, name: str, **labels: str) -> float | None:
    """A sample of the worker's ``/metrics``, or None when it has none with these labels."""
    async with http.get(f"{worker.base_url}/metrics") as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None
