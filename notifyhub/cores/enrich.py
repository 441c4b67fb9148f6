"""Enrich's decisions: what each recipient gets and when.

For each notification of a batch, in order (one recipient's notifications keep theirs):
0. a notification with a digest rule goes to its digest window (the held stage) instead;
   the digest comes back through here as a notification of its own;
1. the content: the template rendered with the payload, in the locale variant that fits the
   notification's locale (``pt-BR``, else ``pt``, else the template's default), or without a
   template the payload's texts (``subject`` or ``title``; ``body`` or ``text``); a template
   that is gone or does not render fails the notification with the reason;
2. the recipient's preference for the channel, then for the notification's category on
   it: disabled → ``dropped``;
3. quiet hours (in the preference's timezone): → ``deferred``, held until they end, then
   back through enrich;
4. the frequency cap (the preference's, else the channel's default): reached → ``dropped``;
then it goes to its channel's sender. The core reads the recipients' preferences and cap
counts from what it is given and updates the counts in place; the agent loads and stores
them around it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from notifyhub.content.rendering import RenderBudgetExceeded, RenderError, pick_locale, render
from notifyhub.cores.held import hold_record
from notifyhub.cores.records import Headers, Outgoing, event_record
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.channels import Channel
from notifyhub.model.messages import (
    PAYLOAD_BODY_FIELDS,
    PAYLOAD_SUBJECT_FIELDS,
    ChannelPreference,
    DeliveryEvent,
    Destination,
    Notification,
    preference_key,
)
from notifyhub.model.status import Status
from notifyhub.rules.frequency_caps import admit
from notifyhub.rules.frequency_caps import reason as cap_reason
from notifyhub.rules.quiet_hours import quiet_until


@dataclass(frozen=True)
class Variant:
    """A template's texts in one locale."""

    subject_template: str | None
    body_template: str


@dataclass(frozen=True)
class Template:
    """A template as the pipeline renders it: its default texts and its locale variants."""

    subject_template: str | None
    body_template: str
    # By language tag, as the tenant spelled it.
    locales: Mapping[str, Variant] = field(default_factory=dict)

    def in_locale(self, locale: str | None) -> tuple[str | None, Variant]:
        """The variant a notification in ``locale`` is rendered in, and its tag (``None``:
        the default texts)."""
        tag = pick_locale(self.locales, locale)
        if tag is None:
            return None, Variant(self.subject_template, self.body_template)
        return tag, self.locales[tag]


@dataclass
class Routed:
    """What a batch leads to."""

    records: list[Outgoing] = field(default_factory=list)
    # Recipients whose cap counts changed (their counts were updated in place).
    counted: set[bytes] = field(default_factory=set)
    # Cap decisions, for the metrics: (allowed, limited).
    allowed: int = 0
    limited: int = 0
    # Seconds each render took, by channel.
    renders: list[tuple[Channel, float]] = field(default_factory=list)


class _Undeliverable(Exception):
    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# A template that went over a render budget fails the notifications that use it (the same
# version of it) without rendering again, for this long.
OVER_BUDGET_MEMORY_SECONDS = 60.0
_over_budget: dict[tuple[str, str | None, str], tuple[float, str]] = {}


def payload_text(payload: Mapping[str, Any], names: Sequence[str]) -> str | None:
    """The first of the payload's fields ``names`` that is a string (a notification without
    a template sends these: see ``PAYLOAD_SUBJECT_FIELDS`` and ``PAYLOAD_BODY_FIELDS``)."""
    return next((value for name in names if isinstance(value := payload.get(name), str)), None)


def content(notification: Notification, templates: Mapping[uuid.UUID, Template | None]) -> Notification:
    """The notification with the subject and body its provider will send."""
    if notification.template_id is None:
        return notification.model_copy(
            update={
                "subject": payload_text(notification.payload, PAYLOAD_SUBJECT_FIELDS),
                "body": payload_text(notification.payload, PAYLOAD_BODY_FIELDS),
            }
        )
    template = templates.get(uuid.UUID(notification.template_id))
    if template is None:
        raise _Undeliverable(
            Status.FAILED, f"template {notification.template_id} was deleted or deactivated"
        )
    locale, variant = template.in_locale(notification.locale)
    which = "template" if locale is None else f"template (locale {locale})"
    sources = (notification.template_id, variant.subject_template, variant.body_template)
    known = _over_budget.get(sources)
    if known is not None and known[0] > time.monotonic():
        raise _Undeliverable(Status.FAILED, known[1])
    try:
        rendered = render(
            notification.channel,
            variant.subject_template,
            variant.body_template,
            notification.payload,
        )
    except RenderBudgetExceeded as exc:
        # Each render may hold the loop up to its time budget; a batch of 500 with the same
        # hostile template must not hold it 500 times.
        reason = f"{which} did not render: {exc}"
        now = time.monotonic()
        # Forget what has expired, so edited templates do not pile up here.
        for stale in [key for key, (until, _) in _over_budget.items() if until <= now]:
            del _over_budget[stale]
        _over_budget[sources] = (now + OVER_BUDGET_MEMORY_SECONDS, reason)
        raise _Undeliverable(Status.FAILED, reason) from None
    except RenderError as exc:
        raise _Undeliverable(Status.FAILED, f"{which} did not render: {exc}") from None
    # A subject goes into a header: whatever line breaks payload values brought, one line.
    subject = " ".join(rendered.subject.split()) if rendered.subject is not None else None
    return notification.model_copy(
        update={
            "subject": subject,
            "body": rendered.body,
            "body_html": rendered.html,
            "content_locale": locale,
        }
    )


def preference_in(stored: Mapping[str, Any] | None, channel: Channel) -> ChannelPreference:
    """The recipient's preference for the channel from their stored preferences (the
    defaults when they set none)."""
    if stored and channel.value in stored:
        return ChannelPreference.model_validate(stored[channel.value])
    return ChannelPreference()


def category_enabled(stored: Mapping[str, Any] | None, channel: Channel, category: str | None) -> bool:
    """Whether the recipient takes this category on this channel (yes unless turned off)."""
    if category is None or not stored:
        return True
    return bool((stored.get(preference_key(channel, category)) or {}).get("enabled", True))


def _report(
    topics: TopicNames, notification: Notification, headers: Headers, status: Status, reason: str
) -> Outgoing:
    """The delivery event saying what became of a notification that is not sent now."""
    event = DeliveryEvent.about(notification, status, reason=reason)
    return event_record(topics.delivery_events, event, headers)


def route(
    batch: Sequence[tuple[Notification, Headers]],
    *,
    preferences: Mapping[bytes, Mapping[str, Any] | None],
    counts: MutableMapping[bytes, dict[str, Any]],
    templates: Mapping[uuid.UUID, Template | None],
    now: float,
    topics: TopicNames,
) -> Routed:
    """Decide each notification of the batch (see the module's docstring).

    ``preferences``: each recipient's stored preferences by channel; ``counts``: each
    recipient's cap counts by channel, updated in place for those counted.
    """
    routed = Routed()
    for notification, headers in batch:
        key = notification.recipient_key
        if notification.digest is not None:
            # Collected first: the digest it joins is what gets content, preferences and caps.
            closes = now + notification.digest.window_seconds
            routed.records.append(hold_record(topics, notification, closes, Destination.DIGEST, headers))
            continue
        started = time.perf_counter()
        try:
            ready = content(notification, templates)
        except _Undeliverable as exc:
            routed.records.append(_report(topics, notification, headers, exc.status, exc.reason))
            continue
        channel = notification.channel
        if notification.template_id is not None:
            routed.renders.append((channel, time.perf_counter() - started))
        stored = preferences.get(key)
        preference = preference_in(stored, channel)
        if not preference.enabled:
            reason = f"the recipient turned the {channel} channel off"
            routed.records.append(_report(topics, notification, headers, Status.DROPPED, reason))
            continue
        if not category_enabled(stored, channel, notification.category):
            reason = f"the recipient turned {notification.category} off on the {channel} channel"
            routed.records.append(_report(topics, notification, headers, Status.DROPPED, reason))
            continue
        if preference.quiet_hours_start and preference.quiet_hours_end:
            until = quiet_until(
                datetime.fromtimestamp(now, UTC),
                preference.quiet_hours_start,
                preference.quiet_hours_end,
                preference.timezone,
            )
            if until is not None:
                routed.records.append(
                    _report(topics, notification, headers, Status.DEFERRED, "quiet hours")
                )
                routed.records.append(
                    hold_record(topics, notification, until.timestamp(), Destination.ENRICH, headers)
                )
                continue
        recipient_counts = counts.setdefault(key, {})
        before = recipient_counts.get(channel.value)
        decision = admit(recipient_counts, channel, preference, now, notification.id)
        if recipient_counts.get(channel.value) != before:
            routed.counted.add(key)
        if not decision.allowed:
            routed.limited += 1
            reason = cap_reason(decision, channel)
            routed.records.append(_report(topics, notification, headers, Status.DROPPED, reason))
            continue
        routed.allowed += 1
        routed.records.append(
            Outgoing(topics.send(channel, ready.priority), key, ready.to_bytes(), headers)
        )
    return routed
