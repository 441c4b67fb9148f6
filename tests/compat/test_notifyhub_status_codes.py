"""A client written for NotifyHub checks status codes; where NotifyHub's answer is not one
of its documented bugs, the answer here is the same: paging parameters it cannot read fall
back to the defaults, a body over 1 MB is a 422, and deleting what is not there is a 204."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.api import Tenant, call
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

LISTS = ["/api/v1/notifications", "/api/v1/templates", "/api/v1/webhooks"]
ONE_MEGABYTE = 1024 * 1024


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "query", ["page=0", "page=-1", "page=first", "per_page=0", "per_page=-5", "per_page=many"]
)
async def test_paging_it_cannot_read_is_the_default_page(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, path: str, query: str
) -> None:
    status, body = await call(http, "GET", f"{worker.base_url}{path}?{query}", headers=tenant.headers)
    assert status == 200, body
    assert (body["meta"]["page"], body["meta"]["per_page"]) == (1, 20)


@pytest.mark.parametrize(
    ("method", "path", "admin"),
    [
        ("POST", "/api/v1/notifications", False),
        ("PUT", "/api/v1/users/ada/preferences/email", False),
        ("POST", "/api/v1/device-tokens", False),
        ("POST", "/internal/tenants", True),
    ],
)
async def test_a_body_over_one_megabyte_is_a_422(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, method: str, path: str, admin: bool
) -> None:
    headers = worker.admin_headers if admin else tenant.headers
    huge = {"payload": {"body": "x" * ONE_MEGABYTE}}
    status, body = await call(http, method, f"{worker.base_url}{path}", json=huge, headers=headers)
    assert status == 422, body
    assert body["error"]["code"] == "VALIDATION_ERROR" and "body" in body["error"]["details"]


@pytest.mark.parametrize(
    "path", ["/api/v1/users/nobody/preferences/sms", "/api/v1/device-tokens/never-registered"]
)
async def test_deleting_what_is_not_there_is_a_204(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, path: str
) -> None:
    status, body = await call(http, "DELETE", f"{worker.base_url}{path}", headers=tenant.headers)
    assert (status, body) == (204, None)


@pytest.mark.parametrize("limit", ["0", "201", "all"])
async def test_an_inbox_limit_out_of_range_is_the_default(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, limit: str
) -> None:
    status, body = await call(
        http,
        "GET",
        f"{worker.base_url}/api/v1/inbox?limit={limit}",
        headers={**tenant.headers, "X-Recipient-ID": "ada"},
    )
    assert status == 200, body
    assert body["meta"]["limit"] == 50
