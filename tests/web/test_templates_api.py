"""``/api/v1/templates``: CRUD, versions, soft delete, per-tenant names, preview, locale variants."""

from __future__ import annotations

from typing import Any, cast

import aiohttp
import asyncpg
import pytest

from notifyhub.content.rendering import MAX_TEMPLATE_CHARS
from notifyhub.db import templates, tenants
from notifyhub.model.channels import Channel
from notifyhub.web.templates import MAX_TEMPLATE_LOCALES, MAX_TEMPLATES_PER_TENANT
from tests.support.api import Tenant, call
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

ORDER_SHIPPED = {
    "name": "order_shipped",
    "channel": "email",
    "subject_template": "Order {{ order }} shipped",
    "body_template": "<p>Hi {{ name }}, order {{ order }} is on its way.</p>",
    "metadata": {"team": "fulfilment"},
}


async def create(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, **overrides: Any
) -> dict[str, Any]:
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/templates",
        json={**ORDER_SHIPPED, **overrides},
        headers=tenant.headers,
    )
    assert status == 201, body
    return cast(dict[str, Any], body["data"])


async def test_create_read_update_and_versions(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    created = await create(http, worker, tenant)
    assert created["version"] == 1 and created["is_active"] is True
    assert created["metadata"] == {"team": "fulfilment"}
    url = f"{worker.base_url}/api/v1/templates/{created['id']}"

    status, updated = await call(
        http, "PUT", url, json={"subject_template": "Shipped: {{ order }}"}, headers=tenant.headers
    )
    assert status == 200
    assert updated["data"]["version"] == 2
    assert updated["data"]["subject_template"] == "Shipped: {{ order }}"
    assert updated["data"]["body_template"] == ORDER_SHIPPED["body_template"]

    status, versions = await call(http, "GET", f"{url}/versions", headers=tenant.headers)
    assert status == 200
    assert [(v["version"], v["subject_template"]) for v in versions["data"]] == [
        (1, "Order {{ order }} shipped"),
        (2, "Shipped: {{ order }}"),
    ]

    status, fetched = await call(http, "GET", url, headers=tenant.headers)
    assert status == 200 and fetched["data"]["version"] == 2


async def test_names_are_unique_per_tenant_and_channel_only(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, database: asyncpg.Pool
) -> None:
    await create(http, worker, tenant)
    status, body = await call(
        http, "POST", f"{worker.base_url}/api/v1/templates", json=ORDER_SHIPPED, headers=tenant.headers
    )
    assert status == 409 and body["error"]["code"] == "CONFLICT"
    await create(http, worker, tenant, channel="sms", body_template="Order {{ order }} shipped")

    other = await tenants.create_tenant(database, "other")
    _, other_key = await tenants.create_api_key(database, other["id"], "k")
    await create(http, worker, Tenant(other["id"], other_key))


async def test_a_deleted_template_is_gone_and_its_name_free_again(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    created = await create(http, worker, tenant)
    url = f"{worker.base_url}/api/v1/templates/{created['id']}"
    status, deleted = await call(http, "DELETE", url, headers=tenant.headers)
    assert status == 200, deleted
    assert deleted["data"]["id"] == created["id"]
    assert deleted["data"]["body_template"] == ORDER_SHIPPED["body_template"]
    assert (await call(http, "GET", url, headers=tenant.headers))[0] == 404
    assert (await call(http, "DELETE", url, headers=tenant.headers))[0] == 404
    status, _ = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/notifications",
        json={
            "channel": "email",
            "recipient_id": "u",
            "recipient_address": "u@example.com",
            "template_id": created["id"],
            "payload": {"name": "x", "order": 1},
        },
        headers=tenant.headers,
    )
    assert status == 422
    await create(http, worker, tenant)


async def test_list_filters_by_channel_and_pages(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    status, body = await call(
        http, "GET", f"{worker.base_url}/api/v1/templates?channel=sms&per_page=1", headers=tenant.headers
    )
    assert status == 200
    assert body["meta"]["total"] == 2  # the starter sms templates: otp and alert
    assert body["meta"]["per_page"] == 1 and len(body["data"]) == 1
    assert body["data"][0]["channel"] == "sms"


async def test_preview_renders_escapes_html_and_refuses_undefined_variables(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    created = await create(http, worker, tenant)
    url = f"{worker.base_url}/api/v1/templates/{created['id']}/preview"
    status, body = await call(
        http, "POST", url, json={"payload": {"name": "<b>Ada</b>", "order": 7}}, headers=tenant.headers
    )
    assert status == 200
    assert body["data"] == {
        "subject": "Order 7 shipped",
        "body": "<p>Hi &lt;b&gt;Ada&lt;/b&gt;, order 7 is on its way.</p>",
        "locale": None,
    }
    status, body = await call(http, "POST", url, json={"payload": {"order": 7}}, headers=tenant.headers)
    assert status == 422
    assert "name" in body["error"]["details"]["body"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"body_template": "{{ unclosed"}, "body_template"),
        ({"subject_template": "{% if %}"}, "subject_template"),
        ({"channel": "fax"}, "channel"),
        ({"name": ""}, "name"),
        ({"owner": "me"}, "owner"),
    ],
)
async def test_invalid_templates_are_a_422_naming_the_field(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, overrides: dict[str, Any], field: str
) -> None:
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/templates",
        json={**ORDER_SHIPPED, **overrides},
        headers=tenant.headers,
    )
    assert status == 422
    assert field in body["error"]["details"]


async def test_a_sandbox_escape_does_not_render(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    created = await create(
        http,
        worker,
        tenant,
        name="evil",
        subject_template=None,
        body_template="{{ ''.__class__.__mro__[1].__subclasses__() }}",
    )
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/templates/{created['id']}/preview",
        json={"payload": {}},
        headers=tenant.headers,
    )
    assert status == 422
    assert "not allowed" in body["error"]["details"]["body"], body


async def test_another_tenants_template_is_not_found(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, database: asyncpg.Pool
) -> None:
    created = await create(http, worker, tenant)
    other = await tenants.create_tenant(database, "other")
    _, other_key = await tenants.create_api_key(database, other["id"], "k")
    for method in ("GET", "PUT", "DELETE"):
        status, _ = await call(
            http,
            method,
            f"{worker.base_url}/api/v1/templates/{created['id']}",
            json={} if method == "PUT" else None,
            headers={"X-API-Key": other_key},
        )
        assert status == 404, method


@pytest.mark.parametrize("field", ["name", "body_template", "metadata", "is_active"])
async def test_an_update_may_not_null_a_required_field(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, field: str
) -> None:
    created = await create(http, worker, tenant)
    status, body = await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/templates/{created['id']}",
        json={field: None},
        headers=tenant.headers,
    )
    assert status == 422
    assert body["error"]["details"] == {field: "cannot be null"}


@pytest.mark.parametrize("field", ["subject_template", "body_template"])
async def test_a_template_over_the_size_limit_is_a_422_naming_the_field(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, field: str
) -> None:
    too_big = "x" * (MAX_TEMPLATE_CHARS + 1)
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/templates",
        json={**ORDER_SHIPPED, field: too_big},
        headers=tenant.headers,
    )
    assert status == 422 and field in body["error"]["details"], body

    created = await create(http, worker, tenant)
    status, body = await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/templates/{created['id']}",
        json={field: too_big},
        headers=tenant.headers,
    )
    assert status == 422 and field in body["error"]["details"], body


async def test_a_tenant_has_at_most_the_template_cap(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, database: asyncpg.Pool
) -> None:
    live = await database.fetchval(
        "SELECT count(*) FROM templates WHERE tenant_id = $1 AND deleted_at IS NULL", tenant.id
    )
    for number in range(MAX_TEMPLATES_PER_TENANT - live - 1):
        await templates.create(database, tenant.id, f"filler-{number}", Channel.SMS, None, "hi", {})
    last = await create(http, worker, tenant, name="the last one")
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/templates",
        json={**ORDER_SHIPPED, "name": "one too many"},
        headers=tenant.headers,
    )
    assert status == 409, body
    assert f"the most it may have is {MAX_TEMPLATES_PER_TENANT}" in body["error"]["message"]

    status, _ = await call(
        http, "DELETE", f"{worker.base_url}/api/v1/templates/{last['id']}", headers=tenant.headers
    )
    assert status == 200
    await create(http, worker, tenant, name="one too many")


async def test_versions_are_listed_in_pages(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    created = await create(http, worker, tenant)
    url = f"{worker.base_url}/api/v1/templates/{created['id']}"
    for order in range(2, 6):
        status, _ = await call(
            http, "PUT", url, json={"subject_template": f"v{order}"}, headers=tenant.headers
        )
        assert status == 200

    status, body = await call(http, "GET", f"{url}/versions?per_page=2&page=2", headers=tenant.headers)
    assert status == 200
    assert [v["version"] for v in body["data"]] == [3, 4]
    assert (body["meta"]["page"], body["meta"]["per_page"], body["meta"]["total"]) == (2, 2, 5)

    # As in NotifyHub, a page size out of range falls back to the default; a page past the
    # bound is refused.
    status, body = await call(http, "GET", f"{url}/versions?per_page=0", headers=tenant.headers)
    assert status == 200 and body["meta"]["per_page"] == 20
    status, body = await call(http, "GET", f"{url}/versions?page=100001", headers=tenant.headers)
    assert status == 422 and "page" in body["error"]["details"]


async def test_a_template_over_a_render_budget_previews_as_a_422_naming_it(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    created = await create(
        http,
        worker,
        tenant,
        name="loop bomb",
        subject_template=None,
        body_template="{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    )
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/templates/{created['id']}/preview",
        json={"payload": {}},
        headers=tenant.headers,
    )
    assert status == 422, body
    assert "over the budget" in body["error"]["details"]["body"], body


PT = {"subject_template": "Pedido {{ order }} enviado", "body_template": "Oi {{ name }}"}
EN_GB = {"subject_template": "Order {{ order }} dispatched", "body_template": "Hello {{ name }}"}


async def test_locale_variants_are_created_updated_versioned_and_previewed(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    created = await create(http, worker, tenant, locales={"pt": PT})
    assert created["locales"] == {"pt": PT}
    url = f"{worker.base_url}/api/v1/templates/{created['id']}"

    async def preview(locale: str | None) -> dict[str, Any]:
        request = {"payload": {"name": "Ana", "order": 7}, "locale": locale}
        status, body = await call(http, "POST", f"{url}/preview", json=request, headers=tenant.headers)
        assert status == 200, body
        return cast(dict[str, Any], body["data"])

    assert await preview("pt-BR") == {"subject": "Pedido 7 enviado", "body": "Oi Ana", "locale": "pt"}
    assert (await preview("fr"))["locale"] is None
    assert (await preview(None))["subject"] == "Order 7 shipped"

    status, updated = await call(
        http, "PUT", url, json={"locales": {"pt": PT, "en-GB": EN_GB}}, headers=tenant.headers
    )
    assert status == 200, updated
    assert updated["data"]["locales"] == {"pt": PT, "en-GB": EN_GB}
    assert (await preview("en-gb"))["subject"] == "Order 7 dispatched"

    status, versions = await call(http, "GET", f"{url}/versions", headers=tenant.headers)
    assert [v["locales"] for v in versions["data"]] == [{"pt": PT}, {"pt": PT, "en-GB": EN_GB}]


@pytest.mark.parametrize(
    ("locales", "field"),
    [
        ({"pt": {"body_template": "{{ unclosed"}}, "locales.pt.body_template"),
        ({"pt": {"subject_template": "{% if %}", "body_template": "x"}}, "locales.pt.subject_template"),
        ({"pt": {"subject_template": "x"}}, "locales.pt.body_template"),
        ({"Portuguese": {"body_template": "x"}}, "locales.Portuguese.[key]"),
        ({"pt": {"body_template": "x" * (MAX_TEMPLATE_CHARS + 1)}}, "locales.pt.body_template"),
        ({"pt-BR": {"body_template": "x"}, "pt-br": {"body_template": "y"}}, "locales"),
        (
            {
                f"x{chr(97 + n // 26)}{chr(97 + n % 26)}": {"body_template": "x"}
                for n in range(MAX_TEMPLATE_LOCALES + 1)
            },
            "locales",
        ),
    ],
    ids=["syntax", "subject-syntax", "no-body", "bad-tag", "too-big", "same-tag", "too-many"],
)
async def test_an_invalid_locale_variant_is_a_422_naming_it(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, locales: dict[str, Any], field: str
) -> None:
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/templates",
        json={**ORDER_SHIPPED, "locales": locales},
        headers=tenant.headers,
    )
    assert status == 422, body
    assert field in body["error"]["details"], body
