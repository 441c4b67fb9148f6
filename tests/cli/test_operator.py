"""The operator's ``notifyhub`` subcommands, run as commands against a real worker."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import aiohttp
from aiokafka import AIOKafkaProducer

from tests.support.api import FAILING, Tenant, eventually, send_notification, send_sms, wait_for_status
from tests.support.cli import notifyhub
from tests.support.stack import Services
from tests.support.workers import Worker


async def test_events_tail_prints_a_notifications_transitions(
    services: Services, worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    sent = await send_notification(
        http,
        worker,
        tenant,
        channel="sms",
        recipient_id="tailed",
        recipient_address="+15550100",
        payload={"body": "hello"},
    )
    await wait_for_status(http, worker, tenant, sent["id"], "delivered")
    code, out, err = await notifyhub(
        services,
        worker,
        "events",
        "tail",
        "--from-beginning",
        "--notification",
        sent["id"],
        "--count",
        "2",
        "--idle-timeout",
        "10",
    )
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[1] for line in lines] == ["queued", "delivered"]
    assert all(sent["id"] in line and str(tenant.id) in line for line in lines)
    assert "2 shown" in err


async def test_dlq_list_and_replay_all_through_the_admin_api(
    services: Services, worker: Worker, kafka_producer: AIOKafkaProducer
) -> None:
    # A message naming a tenant that does not exist is dead-lettered under that tenant.
    stranger = str(uuid.uuid4())
    poison = {"v": 1, "tenant_id": stranger, "channel": "sms", "recipient_id": "x"}
    poison["payload"] = {"body": "never"}
    poison["recipient_address"] = "+15550100"
    await kafka_producer.send_and_wait(worker.topic("intake"), json.dumps(poison).encode())

    async def listed() -> str | None:
        code, out, err = await notifyhub(
            services, worker, "dlq", "--url", worker.base_url, "list", "--tenant", stranger
        )
        assert code == 0, err
        return out if "unknown tenant" in out else None

    out = await eventually(listed, "the dead letter to be listed")
    assert "waiting" in out and worker.topic("intake") in out

    code, out, err = await notifyhub(
        services, worker, "dlq", "--url", worker.base_url, "replay", "--all", "--tenant", stranger
    )
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "replayed 1, refused 0, 1/1"
    # The letter is marked replayed (with its time); the replay itself was rejected again
    # by intake, which is a new letter.
    code, out, _ = await notifyhub(
        services, worker, "dlq", "--url", worker.base_url, "list", "--tenant", stranger
    )
    assert f"replayed {datetime.now(UTC).year}" in out


async def test_dlq_commands_say_when_the_admin_token_is_refused(
    services: Services, worker: Worker
) -> None:
    code, _, err = await notifyhub(
        services, worker, "dlq", "--url", worker.base_url, "list", admin_token="not-the-token"
    )
    assert code == 1
    assert "refused the admin token" in err


async def test_lag_reports_each_topic_of_the_group(services: Services, worker: Worker) -> None:
    code, out, err = await notifyhub(services, worker, "lag", "--partitions")
    assert code == 0, err
    partitions = [line.split() for line in out.splitlines()[1:-1]]
    topics = {fields[0] for fields in partitions}
    assert worker.topic("delivery-events") in topics
    for _topic, _partition, committed, end, lag in partitions:
        assert int(lag) == max(0, int(end) - (0 if committed == "-" else int(committed)))
    assert out.splitlines()[-1].startswith("total lag ")


async def test_events_show_prints_the_delivery_log_the_api_answers(
    services: Services, worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    sent = await send_sms(http, worker, tenant, **FAILING)
    final = await wait_for_status(http, worker, tenant, sent["id"])
    async with http.get(
        f"{worker.base_url}/api/v1/notifications/{sent['id']}/events", headers=tenant.headers
    ) as response:
        logged = (await response.json())["data"]

    code, out, err = await notifyhub(
        services, worker, "events", "show", "--tenant", str(tenant.id), sent["id"]
    )

    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        [datetime.fromisoformat(entry["occurred_at"]).isoformat(), entry["status"]] for entry in logged
    ]
    assert [entry["status"] for entry in logged] == ["queued", "failed"]
    assert lines[-1].endswith(final["status_reason"])
    assert f"2 events of notification {sent['id']}, tenant {tenant.id}" in err


async def test_events_show_says_when_the_tenant_has_no_such_notification(
    services: Services, worker: Worker, tenant: Tenant
) -> None:
    missing = str(uuid.uuid4())
    code, out, err = await notifyhub(
        services, worker, "events", "show", "--tenant", str(tenant.id), missing
    )
    assert (code, out) == (1, "")
    assert f"tenant {tenant.id} has no notification {missing}" in err
