"""The browser inbox in real headless Chromium (Debian's, driven by Playwright): the page
shows the inbox with its unread badge, a message arrives live while it is open, and
clicking a message marks it read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import cast

import aiohttp
import pytest
from playwright.async_api import Browser, async_playwright, expect

from tests.support.api import Tenant, call, eventually, send_notification, wait_for_status
from tests.support.browser import CHROMIUM, UI_TIMEOUT_MS
from tests.support.workers import Worker

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
def inbox_worker(worker_factory: Callable[..., Worker]) -> Worker:
    """A worker whose in-app channel stores messages in the inbox (not the sink)."""
    return worker_factory(NOTIFYHUB_SINK_CHANNELS="email,sms,push")


async def test_the_page_shows_the_inbox_updates_live_and_marks_read(
    browser: Browser, inbox_worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    recipient = f"browser-{uuid.uuid4().hex[:6]}"
    first = await send_notification(
        http,
        inbox_worker,
        tenant,
        channel="inapp",
        recipient_id=recipient,
        payload={"subject": "Welcome", "body": "already here"},
    )
    await wait_for_status(http, inbox_worker, tenant, first["id"], "delivered")
    status, body = await call(
        http,
        "POST",
        f"{inbox_worker.base_url}/api/v1/ws-token",
        json={"recipient_id": recipient},
        headers=tenant.headers,
    )
    assert status == 200
    page = await browser.new_page()
    try:
        await page.goto(f"{inbox_worker.base_url}/inbox#token={body['data']['token']}")
        messages = page.get_by_test_id("message")
        badge = page.get_by_test_id("unread-badge")
        await expect(page.get_by_test_id("status")).to_have_text("live", timeout=UI_TIMEOUT_MS)
        await expect(messages).to_have_count(1)
        await expect(badge).to_have_text("1")

        await send_notification(
            http,
            inbox_worker,
            tenant,
            channel="inapp",
            recipient_id=recipient,
            payload={"subject": "Live", "body": "arrived while open"},
        )
        await expect(messages).to_have_count(2, timeout=UI_TIMEOUT_MS)
        await expect(messages.first).to_contain_text("arrived while open")
        await expect(badge).to_have_text("2")

        await messages.first.click()
        await expect(badge).to_have_text("1", timeout=UI_TIMEOUT_MS)

        async def unread_is_one() -> bool:
            _, counts = await call(
                http,
                "GET",
                f"{inbox_worker.base_url}/api/v1/inbox/unread-count",
                headers={**tenant.headers, "X-Recipient-ID": recipient},
            )
            return cast(bool, counts["data"]["unread"] == 1)

        await eventually(unread_is_one, "the click to mark the message read on the server")
    finally:
        await page.close()
