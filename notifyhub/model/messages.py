"""The JSON messages on NotifyHub's Kafka topics, versioned by their ``v`` field.

``IntakeMessage`` is a public contract: anyone may produce it to the intake topic
(see ``docs/api.md``, "Producing straight to Kafka", and
``docs/intake-message.schema.json``). The other messages are NotifyHub's own, but the
delivery events topic is documented for consumers too.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.networks import validate_email
from pydantic_core import PydanticCustomError

from notifyhub.model import limits
from notifyhub.model.channels import Channel
from notifyhub.model.keys import recipient_key
from notifyhub.model.status import Status

# A notification id derived from where a message sits in Kafka, for producers that
# send none: a redelivered message then keeps its id instead of becoming a new one.
KAFKA_ORIGIN_NAMESPACE = uuid.UUID("5b0e0a52-1c1e-4b5e-9a55-6e6f74696679")

RecipientId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
ShortText = Annotated[str, StringConstraints(max_length=255)]


def _within_limits(payload: dict[str, Any]) -> dict[str, Any]:
    problem = limits.json_problem(payload, "payload")
    if problem is not None:
        field, text = problem
        raise PydanticCustomError("payload_limit", "{field}: {text}", {"field": field, "text": text})
    return payload


def _usable_time(when: datetime) -> datetime:
    problem = limits.scheduled_at_problem(when)
    if problem is not None:
        raise PydanticCustomError("scheduled_at", problem)
    return when


def _one_line(text: str | None) -> str | None:
    if text is not None and (limits.has_line_break(text) or not limits.is_storable(text)):
        raise PydanticCustomError("one_line", "may not contain CR, LF or NUL")
    return text


# A client's payload: a JSON object within ``notifyhub.model.limits`` (depth, numbers, size).
Payload = Annotated[dict[str, Any], AfterValidator(_within_limits)]
# A client's scheduled_at: with a time zone, convertible to UTC, not in the distant past.
ScheduledAt = Annotated[AwareDatetime, AfterValidator(_usable_time)]
# Text that may end up in a header (an address, a subject): one line.
OneLine = Annotated[str, StringConstraints(max_length=255), AfterValidator(_one_line)]

# A language tag (BCP 47, loosely): a language, then subtags (``en``, ``pt-BR``, ``zh-Hant-TW``).
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
Locale = Annotated[str, StringConstraints(pattern=LOCALE_PATTERN, max_length=35)]

# A notification's category: a short lower-case name (it is part of preference keys and
# unsubscribe links).
CATEGORY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
Category = Annotated[str, StringConstraints(pattern=CATEGORY_PATTERN)]

# Twilio and every SMS provider we know take E.164 numbers.
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def channel_address(channel: Channel, address: str) -> str:
    """The address as ``channel``'s provider takes it, or a validation error saying why not.

    E-mail: one RFC 5322 address (email-validator; ``Ada <ada@example.com>`` keeps only
    the address), never a list. SMS: an E.164 number.
    """
    if channel is Channel.EMAIL:
        try:
            return validate_email(address)[1]
        except PydanticCustomError:
            raise PydanticCustomError("email", "a single e-mail address is required") from None
    if channel is Channel.SMS and not E164.match(address):
        raise PydanticCustomError("e164", "an E.164 phone number is required (+ and 7 to 15 digits)")
    return address


# Held notifications live in a table; a bound keeps forgotten far-future sends out of it.
MAX_SCHEDULE_AHEAD = timedelta(days=366)

# Without a template, the texts a channel sends come from these payload fields, the first
# string found: the e-mail subject, push title and in-app title; then the body.
PAYLOAD_SUBJECT_FIELDS = ("subject", "title")
PAYLOAD_BODY_FIELDS = ("body", "text")

# Channels whose provider needs an address the request has to carry.
ADDRESSED_CHANNELS = frozenset({Channel.EMAIL, Channel.SMS})

# Priority ranks urgency as NotifyHub does: 1 is the most urgent, 10 the least (its
# scheduler takes the lowest first). Version 1 of IntakeMessage and Notification ranked
# it the other way round; version 2 is NotifyHub's, and a version-1 message is read as
# version 2 with ``priority`` turned around (``MOST_URGENT + LEAST_URGENT - priority``).
MOST_URGENT = 1
LEAST_URGENT = 10
DEFAULT_PRIORITY = 5
PRIORITY_DESCRIPTION = (
    f"{MOST_URGENT} is the most urgent, {LEAST_URGENT} the least; "
    "the most urgent ones (NOTIFYHUB_PRIORITY_THRESHOLD and below) take the priority lanes."
)
_INTEGER = TypeAdapter(int)
# Validation context key: the version a message without ``v`` is read as.
UNVERSIONED = "unversioned"


def as_version_2(data: Any, unversioned: int) -> Any:
    """A message's fields as version 2 reads them: a version-1 priority turned around.

    ``unversioned`` is the version a message without ``v`` is taken to be. A priority that
    is not a number from 1 to 10 is left as it is, for the field's own validation to refuse.
    """
    if not isinstance(data, dict) or data.get("v", unversioned) != 1:
        return data
    upgraded = {**data, "v": 2}
    if "priority" not in data:
        return upgraded
    try:
        priority = _INTEGER.validate_python(data["priority"])
    except ValidationError:
        return upgraded
    if MOST_URGENT <= priority <= LEAST_URGENT:
        upgraded["priority"] = MOST_URGENT + LEAST_URGENT - priority
    return upgraded


class Message(BaseModel):
    """Common settings: unknown fields are an error, so typos never pass silently."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64"
    )

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


# Digests and escalations: bounds that keep a window's items and a chain's holds small.
MAX_DIGEST_WINDOW_SECONDS = 7 * 24 * 3600
MAX_DIGEST_ITEMS = 100
MAX_ESCALATION_STEPS = 3
MAX_ESCALATION_WAIT_SECONDS = 7 * 24 * 3600


class DigestRule(Message):
    """Collect this notification with the others of the same tenant, recipient, channel
    and ``key`` that arrive within ``window_seconds`` of the first, and send them as one."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    window_seconds: int = Field(ge=1, le=MAX_DIGEST_WINDOW_SECONDS)
    max_items: int = Field(
        default=MAX_DIGEST_ITEMS,
        ge=2,
        le=MAX_DIGEST_ITEMS,
        description="The digest is sent as soon as it holds this many items (within a second), "
        "or earlier when its payload would pass the payload limit.",
    )
    template_id: ShortText | None = Field(
        default=None,
        description="The template the digest is rendered with (its payload has `items`, "
        "`count` and `key`); without it, the notification's own template_id.",
    )


class EscalationStep(Message):
    """If the in-app message has not been seen or read ``after_seconds`` after the previous
    message of the chain was sent, send this channel."""

    after_seconds: int = Field(ge=0, le=MAX_ESCALATION_WAIT_SECONDS)
    channel: Channel
    template_id: ShortText | None = Field(
        default=None,
        description="Renders the in-app notification's payload; without it, the step sends "
        "the in-app message's title and body.",
    )

    @field_validator("channel")
    @classmethod
    def _not_in_app(cls, channel: Channel) -> Channel:
        if channel is Channel.INAPP:
            raise PydanticCustomError(
                "escalation_channel", "an escalation goes to another channel than in-app"
            )
        return channel


class EscalationOf(Message):
    """Which chain a notification is a step of: the in-app notification whose being seen or
    read stops it, and the step's number (1 for the first)."""

    notification_id: uuid.UUID
    step: int = Field(ge=1)


class NotificationRequest(Message):
    """What a client asks for: one recipient, one channel. Shared by HTTP and Kafka intake."""

    channel: Channel
    recipient_id: RecipientId
    recipient_address: OneLine | None = Field(
        default=None,
        description="One line. E-mail: a single RFC 5322 address (a display name is dropped); "
        "SMS: an E.164 number.",
    )
    type: ShortText | None = None
    template_id: ShortText | None = None
    payload: Payload = Field(
        default_factory=dict,
        description=f"At most {limits.MAX_JSON_DEPTH} levels deep and "
        f"{limits.MAX_PAYLOAD_SIZE // 1024} KB of text; numbers finite (no NaN or Infinity), "
        "integers within 64 bits; no NUL or unpaired surrogates; keys at most "
        f"{limits.MAX_KEY_CHARS} characters; `subject` and `title` on one line. Without a "
        "template, `subject` (else `title`) is the e-mail subject, push title and in-app title, "
        "and `body` (else `text`) the body.",
    )
    priority: int = Field(
        default=DEFAULT_PRIORITY, ge=MOST_URGENT, le=LEAST_URGENT, description=PRIORITY_DESCRIPTION
    )
    idempotency_key: ShortText | None = None
    scheduled_at: ScheduledAt | None = Field(
        default=None,
        description="With a time zone; from 2000-01-01 to 366 days ahead.",
    )
    locale: Locale | None = Field(
        default=None,
        description="Which locale variant of the template to render (`pt-BR` falls back to `pt`, "
        "then to the template's default); without it, the recipient profile's locale.",
    )
    category: Category | None = Field(
        default=None,
        description="What it is about (`billing`, `comments`): recipients may turn a category "
        "off per channel, and an e-mail's unsubscribe link turns off its category.",
    )
    digest: DigestRule | None = Field(
        default=None,
        description="Send it in a digest with the recipient's others of the same key on this "
        "channel; it becomes `digested`, and the digest is a notification of its own.",
    )
    escalate: (
        Annotated[list[EscalationStep], Field(min_length=1, max_length=MAX_ESCALATION_STEPS)] | None
    ) = Field(
        default=None,
        description="In-app only: the channels to try, one after the other, while the in-app "
        "message stays unseen and unread.",
    )

    @field_validator("recipient_address")
    @classmethod
    def _addressed_as_its_channel_needs(cls, address: str | None, info: ValidationInfo) -> str | None:
        channel = info.data.get("channel")
        if not address or channel is None:
            return address
        return channel_address(channel, address)

    @field_validator("payload")
    @classmethod
    def _subject_on_one_line(cls, payload: dict[str, Any]) -> dict[str, Any]:
        for name in PAYLOAD_SUBJECT_FIELDS:
            subject = payload.get(name)
            if isinstance(subject, str) and limits.has_line_break(subject):
                raise PydanticCustomError(
                    "one_line", "payload.{name} may not contain CR or LF", {"name": name}
                )
        return payload

    def unsupported_fields(self, now: datetime) -> dict[str, str]:
        """Fields whose value the pipeline cannot honour (yet), mapped to why.

        Refusing them is better than accepting and quietly doing something else.
        """
        problems: dict[str, str] = {}
        if self.template_id is None and not any(
            isinstance(self.payload.get(name), str) for name in PAYLOAD_BODY_FIELDS
        ):
            problems["payload.body"] = (
                "a string is required (payload.body or payload.text) when no template_id is given"
            )
        if self.scheduled_at is not None and self.scheduled_at > now + MAX_SCHEDULE_AHEAD:
            problems["scheduled_at"] = f"at most {MAX_SCHEDULE_AHEAD.days} days ahead"
        if self.escalate and self.channel is not Channel.INAPP:
            problems["escalate"] = (
                "only an in-app notification escalates: its being seen or read stops the steps"
            )
        if self.escalate and self.digest is not None:
            problems["escalate"] = "a notification in a digest does not escalate"
        return problems

    @property
    def needs_lookup(self) -> bool:
        """Whether accepting it needs PostgreSQL: a template to find, or an address to look up."""
        return (
            self.template_id is not None
            or (self.channel in ADDRESSED_CHANNELS and not self.recipient_address)
            or (self.digest is not None and self.digest.template_id is not None)
            or any(step.template_id is not None for step in self.escalate or ())
        )


# What an intake record without ``v`` is: producers written before version 2 could omit
# it (it defaulted to 1), and their priorities have version 1's meaning.
UNVERSIONED_INTAKE_RECORD = 1


class IntakeMessage(NotificationRequest):
    """A notification request on the intake topic (version 2): the public contract.

    ``v`` says what ``priority`` means. Version 2 ranks it as NotifyHub does: 1 is the most
    urgent, 10 the least. Version 1 ranked it the other way round; a version-1 message is
    read as version 2, its priority turned around (11 - priority). A record without ``v``
    is version 1.
    """

    v: Literal[1, 2] = Field(
        default=2,
        description="2: priority as NotifyHub ranks it (1 the most urgent). 1: the other "
        "way round (10 the most urgent), converted on arrival. A record without v is version 1.",
        # Built in code (the HTTP API) without ``v``, a message is version 2; the contract
        # publishes what a record without ``v`` is read as (``from_record``).
        json_schema_extra={"default": UNVERSIONED_INTAKE_RECORD},
    )
    id: uuid.UUID | None = None
    tenant_id: uuid.UUID

    @classmethod
    def from_record(cls, raw: bytes) -> IntakeMessage:
        """The message in an intake record's value, or a ValidationError saying why not."""
        return cls.model_validate_json(raw, context={UNVERSIONED: UNVERSIONED_INTAKE_RECORD})

    @property
    def recipient_key(self) -> bytes:
        return recipient_key(self.tenant_id, self.recipient_id)

    @property
    def assigned_id(self) -> uuid.UUID:
        """``id``, which every message has once accepted: the HTTP API assigns one, intake
        derives one from the record's place in Kafka (``cores.intake.parse``)."""
        if self.id is None:
            raise ValueError("this intake message has no id: it was not accepted")
        return self.id

    @model_validator(mode="before")
    @classmethod
    def _as_version_2(cls, data: Any, info: ValidationInfo) -> Any:
        return as_version_2(data, (info.context or {}).get(UNVERSIONED, 2))


class Notification(Message):
    """A notification as it travels from intake through enrich to a channel's sender.

    Version 2; a version-1 one (in flight or held across the upgrade) is read as version 2
    (see ``as_version_2``). Every one on a topic or in a table says its version.
    """

    v: Literal[1, 2] = 2
    id: uuid.UUID
    tenant_id: uuid.UUID
    channel: Channel
    recipient_id: str
    recipient_address: str | None = None
    type: str | None = None
    template_id: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: int = DEFAULT_PRIORITY
    idempotency_key: str | None = None
    scheduled_at: AwareDatetime | None = None
    # The locale its template is rendered in: the request's, else the recipient profile's.
    locale: str | None = None
    # Filled in by enrich: what the provider is asked to send.
    subject: str | None = None
    body: str | None = None
    # Filled in by enrich: whether ``body`` is HTML, as rendering decided from the template
    # (payload values are escaped only in HTML templates); None for a body from the payload.
    body_html: bool | None = None
    # Filled in by enrich: the template's locale variant rendered (None: its default).
    content_locale: str | None = None
    # Which send attempt this message is (a temporary failure comes back with one more).
    attempt: int = Field(default=1, ge=1)
    category: str | None = None
    digest: DigestRule | None = None
    escalate: list[EscalationStep] | None = None
    # Set on the notifications an escalation sends: which chain, which step.
    escalation_of: EscalationOf | None = None

    @property
    def recipient_key(self) -> bytes:
        """The key of the per-recipient topics, so one recipient's messages stay in order."""
        return recipient_key(self.tenant_id, self.recipient_id)

    @model_validator(mode="before")
    @classmethod
    def _as_version_2(cls, data: Any) -> Any:
        return as_version_2(data, 2)


# What a delivery event may report beyond a status change.
Occurrence = Literal["escalated", "escalation_stopped"]


class DeliveryEvent(Message):
    """One status transition of one notification (delivery events topic, version 1)."""

    v: Literal[1] = 1
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    notification_id: uuid.UUID
    tenant_id: uuid.UUID
    channel: Channel
    recipient_id: str
    status: Status
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    provider: str | None = None
    provider_message_id: str | None = None
    reason: str | None = None
    attempt: int = 1
    # The template's locale variant the notification was sent in (None: the default).
    locale: str | None = None
    # Something that happened without changing the status (which stays the notification's):
    # an escalation step sent, or an escalation stopped by the message being seen or read.
    occurrence: Occurrence | None = None
    # The notification this event points at: the digest one joined (``digested``), the
    # escalation step sent (``escalated``).
    related_notification_id: uuid.UUID | None = None

    @classmethod
    def about(cls, notification: Notification, status: Status, **details: Any) -> DeliveryEvent:
        return cls(
            notification_id=notification.id,
            tenant_id=notification.tenant_id,
            channel=notification.channel,
            recipient_id=notification.recipient_id,
            status=status,
            **details,
        )


class DeadLetter(Message):
    """A message the pipeline could not process, with why (dead-letter topics, version 1)."""

    v: Literal[1] = 1
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    source_topic: str
    reason: str
    tenant_id: uuid.UUID | None = None
    channel: Channel | None = None
    # The original bytes, base64 in JSON, so a message that was not even JSON survives.
    message_key: bytes | None = None
    message: bytes
    failed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # For a send that failed for good: its notification (a replay reopens it), and how
    # many attempts were made. ``message`` then holds the notification as a replay sends it.
    notification_id: uuid.UUID | None = None
    attempts: int | None = None


class DeviceTokenEvent(Message):
    """A push device token's state changed (device token events topic, version 1)."""

    v: Literal[1] = 1
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event: Literal["device_token.deactivated"] = "device_token.deactivated"
    tenant_id: uuid.UUID
    user_id: str
    token: str
    reason: str
    notification_id: uuid.UUID | None = None
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
# Caps beyond these mean "no cap"; bounding them keeps them inside PostgreSQL's int.
MAX_FREQUENCY_CAP = 1_000_000
MAX_FREQUENCY_WINDOW_MINUTES = 366 * 24 * 60


class ChannelPreference(Message):
    """A recipient's wishes for one channel, as the pipeline applies them."""

    enabled: bool = True
    quiet_hours_start: Annotated[str, StringConstraints(pattern=HHMM_PATTERN)] | None = None
    quiet_hours_end: Annotated[str, StringConstraints(pattern=HHMM_PATTERN)] | None = None
    frequency_cap: int | None = Field(default=None, ge=1, le=MAX_FREQUENCY_CAP)
    frequency_window_minutes: int = Field(default=60, ge=1, le=MAX_FREQUENCY_WINDOW_MINUTES)
    timezone: str = "UTC"


class PreferenceUpdate(Message):
    """A change to one recipient's preference for one channel (preference updates topic, v1).

    ``preference`` is ``None`` when the preference was deleted (the defaults apply again).
    """

    v: Literal[1] = 1
    tenant_id: uuid.UUID
    user_id: str
    channel: Channel
    preference: ChannelPreference | None = None
    # A preference for one category of the channel (only ``enabled`` counts for it).
    category: str | None = None

    @property
    def recipient_key(self) -> bytes:
        return recipient_key(self.tenant_id, self.user_id)

    @property
    def table_key(self) -> str:
        """Where it lives in the recipient's preferences: the channel, or channel:category."""
        return preference_key(self.channel, self.category)


def preference_key(channel: Channel, category: str | None = None) -> str:
    return channel.value if category is None else f"{channel.value}:{category}"


class WebhookDelivery(Message):
    """One event for one webhook endpoint (webhooks outbound topic, v1), keyed by endpoint.

    ``body`` is fixed when the event is fanned out, so every attempt sends the same bytes.
    """

    v: Literal[1] = 1
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    tenant_id: uuid.UUID
    event: str
    body: str
    attempt: int = Field(default=1, ge=1)

    @property
    def endpoint_key(self) -> bytes:
        return str(self.endpoint_id).encode()


class ProviderReceipt(Message):
    """What a provider reported about a message it accepted (receipts topic, v1), keyed by
    the provider's message id; see ``notifyhub.receipts``."""

    v: Literal[1] = 1
    receipt_id: str
    provider: str
    provider_message_id: str
    status: Status
    occurred_at: AwareDatetime
    reason: str | None = None
    # Addresses not to send to again (a hard bounce, a complaint), and why.
    suppress: list[str] = Field(default_factory=list)
    suppress_reason: str | None = None
    # Looked up this many times without finding its message (it may beat the send's record).
    attempt: int = Field(default=1, ge=1)

    @property
    def key(self) -> bytes:
        return f"{self.provider}:{self.provider_message_id}".encode()


class Destination(StrEnum):
    """Where the held stage sends what it kept, once its time comes."""

    ENRICH = "enrich"  # the notification goes back through enrich
    SEND = "send"  # the notification goes back to its channel's sender
    WEBHOOK = "webhook"  # the webhook delivery is tried again
    DIGEST = "digest"  # the notification joins its digest window (``release_at`` closes a new one)
    ESCALATE = "escalate"  # the notification was sent; its next escalation step is due then
    RECEIPT = "receipt"  # the receipt goes back to the receipts stage


class HoldRequest(Message):
    """Keep a notification (or a webhook delivery, or a receipt whose message is not known
    yet) until ``release_at``, then send it to ``destination`` (held topic, v1)."""

    v: Literal[1] = 1
    kind: Literal["hold"] = "hold"
    notification: Notification | None = None
    webhook: WebhookDelivery | None = None
    receipt: ProviderReceipt | None = None
    release_at: float  # seconds since the epoch
    destination: Destination

    @model_validator(mode="after")
    def _holds_what_its_destination_takes(self) -> HoldRequest:
        carried = [self.notification is not None, self.webhook is not None, self.receipt is not None]
        if (
            sum(carried) != 1
            or (self.destination is Destination.WEBHOOK) != (self.webhook is not None)
            or (self.destination is Destination.RECEIPT) != (self.receipt is not None)
        ):
            raise ValueError(
                "a hold carries a webhook delivery for 'webhook', a receipt for 'receipt', "
                "else a notification"
            )
        return self

    @property
    def held_id(self) -> str:
        if self.webhook is not None:
            return str(self.webhook.delivery_id)
        if self.receipt is not None:
            return self.receipt.receipt_id
        assert self.notification is not None
        return str(self.notification.id)


class Tick(Message):
    """Time passed: release what is due in this partition (held topic, v1)."""

    v: Literal[1] = 1
    kind: Literal["tick"] = "tick"


class Seen(Message):
    """In-app messages that escalate were seen or read: their escalations stop (held topic,
    v1, keyed by recipient)."""

    v: Literal[1] = 1
    kind: Literal["seen"] = "seen"
    tenant_id: uuid.UUID
    recipient_id: str
    notification_ids: list[uuid.UUID]

    @property
    def recipient_key(self) -> bytes:
        return recipient_key(self.tenant_id, self.recipient_id)


HeldMessage = TypeAdapter(Annotated[HoldRequest | Tick | Seen, Field(discriminator="kind")])
