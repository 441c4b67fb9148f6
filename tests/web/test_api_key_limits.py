"""The per-API-key rate limit, shared through Redis."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest

from tests.support.api import Tenant, call
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

LIMIT = 3


@pytest.fixture(scope="module")
def limited_worker(worker_factory: Callable[..., Worker]) -> Worker:
    return worker_factory(NOTIFYHUB_API_RATE_LIMIT=str(LIMIT), NOTIFYHUB_API_RATE_WINDOW_SECONDS="30")


async def test_a_key_over_its_limit_gets_429_with_retry_after(
    limited_worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    url = f"{limited_worker.base_url}/api/v1/notifications?per_page=1"
    statuses = [(await call(http, "GET", url, headers=tenant.headers))[0] for _ in range(LIMIT)]
    assert statuses == [200] * LIMIT

    async with http.get(url, headers=tenant.headers) as response:
        assert response.status == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 30
        assert (await response.json())["error"]["code"] == "RATE_LIMITED"


async def test_each_key_has_its_own_window(
    limited_worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    """The fixture gives every test a new tenant and key, so this one starts with a full window."""
    url = f"{limited_worker.base_url}/api/v1/notifications?per_page=1"
    assert (await call(http, "GET", url, headers=tenant.headers))[0] == 200


async def test_unauthenticated_routes_are_not_limited(
    limited_worker: Worker, http: aiohttp.ClientSession
) -> None:
    for _ in range(LIMIT * 3):
        assert (await call(http, "GET", f"{limited_worker.base_url}/livez"))[0] == 200


async def test_decisions_are_counted_in_the_metrics(
    limited_worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    url = f"{limited_worker.base_url}/api/v1/notifications?per_page=1"
    for _ in range(LIMIT + 1):
        await call(http, "GET", url, headers=tenant.headers)
    async with http.get(f"{limited_worker.base_url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    counts = {
        line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("notifyhub_ratelimit_decisions_total{")
    }
    assert counts['decision="limited",scope="api_key"'] >= 1
    assert counts['decision="allowed",scope="api_key"'] >= LIMIT
