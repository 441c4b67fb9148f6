"""The Faust app, its settings and its topics: defined once here, imported everywhere.

Topic names live under ``NOTIFYHUB_TOPIC_PREFIX``:

    {prefix}.intake            notification requests (public contract: IntakeMessage)
    {prefix}.dead-letters      messages a stage could not process, with the reason (DeadLetter)
    {prefix}.enrich            accepted notifications, keyed by tenant:recipient
    {prefix}.send.{channel}    rendered notifications for one channel, keyed by tenant:recipient
    {prefix}.delivery-events   every status transition (DeliveryEvent), keyed by notification id
    {prefix}.preference-updates  preference changes from the API (PreferenceUpdate), keyed by
                               tenant:recipient like enrich, so the preferences table is local to it

Every topic carries JSON bytes; the agents parse them themselves so that a message
that is not even JSON reaches a dead-letter topic instead of crashing a stream.
"""

from __future__ import annotations

import faust
from mode import Service

from notifyhub.channels import Channel
from notifyhub.resources import Resources
from notifyhub.settings import get_settings
from notifyhub.web.middleware import middlewares

settings = get_settings()

# The HTTP API's body limit (NotifyHub's contract: 1 MB).
MAX_REQUEST_BODY_BYTES = 1024 * 1024

app = faust.App(
    settings.app_id,
    broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")],
    store="rocksdb://",
    datadir=str(settings.data_dir),
    autodiscover=False,
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=settings.topic_replication_factor,
    # A 202 means "durable": wait for every in-sync replica.
    producer_acks=-1,
    # Exactly-once has open bugs in faust-streaming; at-least-once plus dedupe is the reliable path.
    processing_guarantee="at_least_once",
    table_standby_replicas=settings.table_standby_replicas,
    broker_session_timeout=settings.broker_session_timeout,
    web_host=settings.web_host,
    web_bind=settings.web_host,
    web_port=settings.web_port,
    # Faust's built-in /table views would serve table data without authentication.
    web_tables_enabled=False,
    web_application_options={
        "middlewares": middlewares(),
        "client_max_size": MAX_REQUEST_BODY_BYTES,
    },
)

resources = Resources(settings)


def _topic(name: str) -> faust.TopicT:
    # internal=True makes Faust create the topic with our partition count; Kafka's
    # auto-creation would give it the broker's default (often 1).
    return app.topic(
        settings.topic(name),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        internal=True,
        partitions=settings.topic_partitions,
        replicas=settings.topic_replication_factor,
    )


intake_topic = _topic("intake")
dead_letter_topic = _topic("dead-letters")
enrich_topic = _topic("enrich")
send_topics = {channel: _topic(f"send.{channel}") for channel in Channel}
delivery_events_topic = _topic("delivery-events")
preference_updates_topic = _topic("preference-updates")


async def publish(topic: faust.TopicT, key: bytes | None, value: bytes) -> None:
    """Produce one message and wait until the broker has it (acks=all)."""
    pending = await topic.send(key=key, value=value)
    await pending


@app.service
class SharedConnections(Service):
    """Closes the shared connections when the worker stops."""

    async def on_stop(self) -> None:
        await resources.close()
