"""Intake's decisions: is a Kafka producer's record a notification request, and which id
does it get."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from pydantic import ValidationError

from notifyhub.model.messages import KAFKA_ORIGIN_NAMESPACE, IntakeMessage, Notification


class Rejected(Exception):
    """This message can never be processed as it is; the reason says why."""


def parse(raw: bytes | None, origin: str, now: float) -> IntakeMessage:
    """The intake message in ``raw``, with an id derived from ``origin`` (where the record
    sits in Kafka) when it has none, so a record read again keeps its id.

    A version-1 record, or one without ``v``, has its priority turned to NotifyHub's meaning.
    """
    if not raw:
        raise Rejected("empty message")
    try:
        message = IntakeMessage.from_record(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'message'}: "
            f"{'unknown field' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise Rejected(f"invalid intake message: {problems}") from None
    unsupported = message.unsupported_fields(datetime.fromtimestamp(now, UTC))
    if unsupported:
        raise Rejected(
            "invalid intake message: " + "; ".join(f"{k}: {v}" for k, v in unsupported.items())
        )
    if message.id is None:
        message = message.model_copy(update={"id": uuid.uuid5(KAFKA_ORIGIN_NAMESPACE, origin)})
    return message


def as_notification(message: IntakeMessage) -> Notification:
    """The notification an accepted request becomes."""
    return Notification.model_validate(message.model_dump(exclude={"v"}))


def tenant_hint(raw: bytes | None) -> uuid.UUID | None:
    """The tenant a rejected message claims, when it says, so its DLQ entry is scoped."""
    try:
        return uuid.UUID(str(json.loads(raw or b"")["tenant_id"]))
    except (ValueError, TypeError, KeyError):
        return None
