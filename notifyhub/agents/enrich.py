"""Enrich: decide, in batches, what each recipient gets and when (``cores.enrich``), and
route it to its channel's sender.

Keyed by tenant:recipient, so one recipient's notifications are handled in order by one
worker, next to that recipient's partitions of the preferences and frequency-cap tables.
A batch's templates are read at once (and kept ``TEMPLATE_CACHE_SECONDS``); the tables are
read before the core decides and the counts it changed written after, each while the
record of that recipient is the current event (Faust tables live per partition).

Order of effects: the cap counts (their changelog), then the records produced (send,
holds, delivery events), then the acknowledgement. A record read again passes its cap
without being counted twice: each count remembers its notification.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import faust

from notifyhub.agents.kit import batches, dead_letters, guarded, parsed
from notifyhub.app import emit, enrich_topics, lane_agents, resources, topics
from notifyhub.cores.enrich import Template, Variant, route
from notifyhub.db import templates as templates_db
from notifyhub.kafka.faust_app import at_event
from notifyhub.model.messages import Notification
from notifyhub.observability import tracing
from notifyhub.observability.metrics import RATE_LIMIT_DECISIONS, TEMPLATE_RENDER_SECONDS
from notifyhub.runtime import clock
from notifyhub.runtime.outages import through_outages
from notifyhub.tables import frequency_caps as caps
from notifyhub.tables.preferences import preferences_table

# Templates (with their locale variants) are read from PostgreSQL at most this often per
# template and worker: a burst to many recipients renders from memory, and an edit or
# delete still takes effect within this time.
TEMPLATE_CACHE_SECONDS = 2.0

_template_cache: dict[uuid.UUID, tuple[float, Template | None]] = {}


def _template_of(texts: templates_db.TemplateTexts) -> Template:
    locales = {tag: Variant(subject, body) for tag, (subject, body) in texts.locales.items()}
    return Template(texts.subject_template, texts.body_template, locales)


async def _templates(ids: set[uuid.UUID]) -> dict[uuid.UUID, Template | None]:
    """The batch's templates (``None``: deleted or deactivated), from the cache or read at once."""
    now = time.monotonic()
    stale = {i for i in ids if (cached := _template_cache.get(i)) is None or cached[0] <= now}
    if stale:
        found = await templates_db.for_rendering_many(await resources.db(), stale)
        for template_id in stale:
            texts = found.get(template_id)
            template = None if texts is None else _template_of(texts)
            _template_cache[template_id] = (now + TEMPLATE_CACHE_SECONDS, template)
    return {i: _template_cache[i][1] for i in ids}


async def _enrich(events: Sequence[faust.EventT[bytes]]) -> None:
    with tracing.batch_spans(events, "enrich") as traces:
        good, letters = parsed(events, Notification, "enrich message")
        trace_of = dict(zip(events, traces, strict=True))
        wanted = {uuid.UUID(n.template_id) for _, n in good if n.template_id is not None}
        templates = (
            await through_outages(lambda: _templates(wanted), "enrich: read templates") if wanted else {}
        )
        # The tables of a recipient are read and written at an event of that recipient.
        last_event: dict[bytes, faust.EventT[bytes]] = {}
        for event, notification in good:
            last_event[notification.recipient_key] = event
        preferences = {}
        counts = {}
        for key, event in last_event.items():
            with at_event(event):
                preferences[key] = preferences_table.get(key)
                counts[key] = caps.counts_of(key)
        for event, notification in good:
            tracing.annotate(trace_of[event], **{"notifyhub.notification_id": notification.id})
        routed = route(
            [(n, tracing.passed_on(e.headers, trace_of[e])) for e, n in good],
            preferences=preferences,
            counts=counts,
            templates=templates,
            now=clock.now(),
            topics=topics,
        )
        for key in routed.counted:
            with at_event(last_event[key]):
                caps.store(key, counts[key])
        if routed.allowed:
            RATE_LIMIT_DECISIONS.labels("recipient", "allowed").inc(routed.allowed)
        if routed.limited:
            RATE_LIMIT_DECISIONS.labels("recipient", "limited").inc(routed.limited)
        for channel, seconds in routed.renders:
            TEMPLATE_RENDER_SECONDS.labels(channel=channel.value).observe(seconds)
        await dead_letters(letters)
        await emit(routed.records)


@lane_agents(enrich_topics, "enrich")
async def enrich(stream: faust.StreamT[bytes]) -> None:
    async for events in batches(stream):
        await guarded(events, _enrich, "enrich")
