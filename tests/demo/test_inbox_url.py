"""``notifyhub inbox-url``: the browser inbox link `make run` prints, against a real worker."""

from __future__ import annotations

import pytest

from notifyhub.inbox import tokens as inbox_tokens
from tests.support.api import Tenant
from tests.support.cli import notifyhub
from tests.support.stack import Services
from tests.support.workers import SESSION_SECRETS, Worker

pytestmark = pytest.mark.stack


async def test_it_prints_the_inbox_page_with_a_token_for_the_tenant_and_recipient(
    services: Services, worker: Worker, tenant: Tenant
) -> None:
    code, out, err = await notifyhub(
        services,
        worker,
        "inbox-url",
        "--api-key",
        tenant.api_key,
        "--recipient",
        "ada",
        "--url",
        worker.base_url,
    )
    assert code == 0, err
    page, _, token = out.strip().partition("#token=")
    assert page == f"{worker.base_url}/inbox"
    grant = inbox_tokens.verify(SESSION_SECRETS["NOTIFYHUB_WS_TOKEN_SECRET"], token)
    assert (grant.tenant_id, grant.recipient_id) == (tenant.id, "ada")


async def test_a_refused_key_is_a_one_line_reason_and_a_non_zero_exit(
    services: Services, worker: Worker
) -> None:
    code, out, err = await notifyhub(
        services, worker, "inbox-url", "--api-key", "not-a-key", "--url", worker.base_url
    )
    assert code == 1 and out == ""
    assert err.startswith(f"notifyhub inbox-url: {worker.base_url} answered 401"), err
