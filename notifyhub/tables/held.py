"""The held table: notifications waiting for a time (``scheduled_at``, the end of quiet
hours, a retry's backoff), webhook deliveries waiting for their retry, receipts waiting for
their message, digest windows and escalation steps.

Keyed like the held topic (``tenant:recipient``; a webhook's endpoint id), so what is
held lives in the partition that owns the key and moves with it on a rebalance; the
changelog rebuilds the table after a restart. Each value is a ``HeldState`` (JSON): the
key's ``HeldEntry``s waiting and releasing, and what it released lately. An entry's
``trace`` is the W3C context of the request, so what is released continues its trace.

Digest windows are entries too (destination ``digest``, a ``DigestWindow``): an item joins
the open window of its channel and key, or opens one. ``digested`` remembers for
``DIGESTED_MEMORY_SECONDS`` which digest each item of a released window went into, so an
item read again is not sent in a second digest. Escalations waiting for their next step
are entries with destination ``escalate``; a ``Seen`` message removes those of its chains.

A release is written to the table before what it sends is in Kafka (the producer sends
to each partition on its own), so a released entry stays (``releasing``, with the offset
of the tick that released it) until a later tick: if the worker dies first, the tick is
read again (its offset was not committed) and releases the entry again.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Required, TypedDict

from notifyhub.app import app, settings
from notifyhub.cores import digests, escalations
from notifyhub.kafka.partitions import partition_of
from notifyhub.model.messages import (
    Destination,
    HoldRequest,
    Notification,
    ProviderReceipt,
    WebhookDelivery,
)
from notifyhub.observability.metrics import HELD_MESSAGES


class DigestWindow(TypedDict):
    """An open digest window: its items (notifications, as JSON), their ids, their size."""

    window: str  # the channel and digest key (``cores.digests.window_of``)
    items: list[dict[str, Any]]
    item_ids: list[str]
    size: int


class HeldEntry(TypedDict, total=False):
    """One thing held (as stored: JSON), until ``release_at``, for ``destination``."""

    id: Required[str]  # the notification's, the webhook delivery's, the receipt's or the digest's
    release_at: Required[float]
    destination: Required[str]  # a ``Destination``
    trace: Required[dict[str, str]]  # the W3C context of the request that held it
    # What is held: one of these.
    notification: dict[str, Any]
    webhook: dict[str, Any]
    receipt: dict[str, Any]
    digest: DigestWindow
    released_by: int  # in ``releasing``: the offset of the tick that released it


class HeldState(TypedDict):
    """A key's value in the held table."""

    waiting: list[HeldEntry]
    releasing: list[HeldEntry]
    released: dict[str, float]  # each released hold (``_hold_id``), when it was released
    # Each item of a released digest window: the digest's id and when it was released.
    digested: dict[str, tuple[str, float]]


@dataclass(frozen=True)
class Released:
    destination: Destination
    notification: Notification | None
    webhook: WebhookDelivery | None
    trace: dict[str, str]
    # A digest window: its id and items, in the order they joined.
    digest_id: uuid.UUID | None = None
    items: tuple[Notification, ...] = ()
    receipt: ProviderReceipt | None = None

    @classmethod
    def of(cls, entry: HeldEntry) -> Released:
        notification, webhook = entry.get("notification"), entry.get("webhook")
        digest = entry.get("digest")
        return cls(
            Destination(entry["destination"]),
            Notification.model_validate(notification) if notification else None,
            WebhookDelivery.model_validate(webhook) if webhook else None,
            entry.get("trace", {}),
            uuid.UUID(entry["id"]) if digest else None,
            tuple(Notification.model_validate(item) for item in digest["items"]) if digest else (),
            ProviderReceipt.model_validate(entry["receipt"]) if entry.get("receipt") else None,
        )


# A released hold is remembered this long, so that replaying its hold request (Kafka is
# at-least-once: after a rebalance the new owner re-reads uncommitted messages, while the
# table already shows the release) cannot hold and release the notification again.
RELEASED_MEMORY_SECONDS = 24 * 3600
# Which digest an item went into is remembered this long after the digest was sent (an
# item read again later than this would join a second digest). Shorter than the memory of
# holds: a busy recipient's items are many.
DIGESTED_MEMORY_SECONDS = 3600


def _hold_id(entry_or_id: HeldEntry | str, release_at: float | None = None) -> str:
    """One hold of one notification: a notification may be held again later (scheduled,
    then deferred by quiet hours), but each hold has its own release time."""
    if isinstance(entry_or_id, dict):
        return f"{entry_or_id['id']}@{entry_or_id['release_at']}"
    return f"{entry_or_id}@{release_at}"


def _copy(stored: Mapping[str, Any] | None) -> HeldState:
    # A copy: Faust writes the changelog only when a value is assigned back.
    stored = stored or {}
    return {
        "waiting": list(stored.get("waiting", [])),
        "releasing": list(stored.get("releasing", [])),
        "released": dict(stored.get("released", {})),
        "digested": dict(stored.get("digested", {})),
    }


class HeldNotification(NamedTuple):
    """A notification the held table keeps for a recipient, as operators see it."""

    notification_id: str
    release_at: float
    destination: Destination
    channel: str


class HeldTable:
    """What the held stage keeps, in one table (a Faust table in the worker, a dict in unit
    tests), and what this worker knows in memory of when its partitions are next due."""

    def __init__(self, table: MutableMapping[bytes, Any], partitions: int) -> None:
        self._table = table
        self._partitions = partitions
        # In memory only: the earliest release time per partition this worker knows of, so
        # a tick scans the table only when something may be due. Unknown (after a start or
        # a rebalance) means "scan on the next tick".
        self._next_due: dict[int, float] = {}
        # In memory only: how many entries wait in each partition this worker has scanned
        # (notifyhub_held_messages); rebuilt by the scan that follows a start or a rebalance.
        self._waiting: dict[int, int] = {}

    def waiting_count(self) -> int:
        """How many entries wait in the partitions this worker has scanned."""
        return sum(self._waiting.values())

    def _state(self, recipient_key: bytes) -> HeldState:
        """The recipient's state (``waiting``, ``releasing``, ``released``, ``digested``), a
        copy to change and store."""
        return _copy(self._table.get(recipient_key))

    def _store(self, recipient_key: bytes, state: HeldState, now: float) -> None:
        released = {
            hold: at for hold, at in state["released"].items() if at > now - RELEASED_MEMORY_SECONDS
        }
        digested = {
            item: (digest, at)
            for item, (digest, at) in state["digested"].items()
            if at > now - DIGESTED_MEMORY_SECONDS
        }
        if state["waiting"] or state["releasing"] or released or digested:
            value: dict[str, Any] = {
                "waiting": state["waiting"],
                "releasing": state["releasing"],
                "released": released,
            }
            if digested:
                value["digested"] = digested
            self._table[recipient_key] = value
        elif recipient_key in self._table:
            del self._table[recipient_key]

    def _due_soon(self, key: bytes, release_at: float) -> None:
        """A tick of the key's partition must look at it by ``release_at``."""
        partition = partition_of(key, self._partitions)
        if partition in self._next_due:
            self._next_due[partition] = min(self._next_due[partition], release_at)

    def hold(self, key: bytes, request: HoldRequest, now: float, trace: dict[str, str]) -> None:
        """Keep what the request holds until its ``release_at`` (call while processing the
        key's event). A request for a hold that was already released is a replay, and is ignored.
        """
        state = self._state(key)
        held_id, release_at = request.held_id, request.release_at
        if _hold_id(held_id, release_at) in state["released"]:
            return
        waiting_before = len(state["waiting"])
        waiting = [e for e in state["waiting"] if e["id"] != held_id]
        entry: HeldEntry = {
            "id": held_id,
            "release_at": release_at,
            "destination": request.destination,
            "trace": trace,
        }
        if request.webhook is not None:
            entry["webhook"] = request.webhook.model_dump(mode="json")
        elif request.receipt is not None:
            entry["receipt"] = request.receipt.model_dump(mode="json")
        else:
            assert request.notification is not None  # the request's validator guarantees one
            entry["notification"] = request.notification.model_dump(mode="json", exclude_none=True)
        waiting.append(entry)
        state["waiting"] = sorted(waiting, key=lambda e: e["release_at"])
        self._store(key, state, now)
        self._due_soon(key, release_at)
        self._count_waiting(key, len(state["waiting"]) - waiting_before)

    def _count_waiting(self, key: bytes, more: int) -> None:
        partition = partition_of(key, self._partitions)
        if partition in self._waiting:
            self._waiting[partition] += more

    def collect(self, key: bytes, request: HoldRequest, now: float, trace: dict[str, str]) -> uuid.UUID:
        """Add the request's notification to its digest window (call while processing the
        key's event); the id of the digest it is in. An item read again is where it was."""
        item = request.notification
        assert item is not None and item.digest is not None
        state = self._state(key)
        item_id = str(item.id)
        windows = [
            e for e in state["waiting"] + state["releasing"] if e["destination"] == Destination.DIGEST
        ]
        for entry in windows:
            if item_id in entry["digest"]["item_ids"]:
                return uuid.UUID(entry["id"])
        if item_id in state["digested"]:
            return uuid.UUID(state["digested"][item_id][0])
        joined = item.model_dump(mode="json", exclude_none=True)
        size = digests.item_size(digests.item_of(item))
        window = digests.window_of(item)
        open_window: HeldEntry | None = next(
            (
                e
                for e in state["waiting"]
                if e["destination"] == Destination.DIGEST
                and e["digest"]["window"] == window
                and e["release_at"] > now
            ),
            None,
        )
        if open_window is not None:
            # A copy to change: the one read may be the table's own value.
            index = state["waiting"].index(open_window)
            open_window = state["waiting"][index] = copy.deepcopy(open_window)
        if open_window is not None and not digests.fits(open_window["digest"]["size"], size):
            open_window["release_at"] = (
                now  # full: sent on the next tick; this item opens the next window
            )
            open_window = None
        if open_window is None:
            open_window = {
                "id": str(digests.digest_id(item.id)),
                "release_at": request.release_at,
                "destination": Destination.DIGEST,
                "trace": trace,
                "digest": {"window": window, "items": [], "item_ids": [], "size": 0},
            }
            state["waiting"].append(open_window)
            self._count_waiting(key, 1)
        entry = open_window
        entry["digest"]["items"].append(joined)
        entry["digest"]["item_ids"].append(item_id)
        entry["digest"]["size"] += size
        if len(entry["digest"]["items"]) >= item.digest.max_items:
            entry["release_at"] = now  # full: sent on the next tick
        state["waiting"] = sorted(state["waiting"], key=lambda e: e["release_at"])
        self._store(key, state, now)
        for waiting in state["waiting"]:
            self._due_soon(key, waiting["release_at"])
        return uuid.UUID(entry["id"])

    def stop_escalations(self, key: bytes, chains: set[uuid.UUID], now: float) -> list[Notification]:
        """Drop the recipient's escalations waiting on these chains (their in-app message was
        seen or read); the notifications whose next step will not be sent."""
        state = self._state(key)
        stopped: list[Notification] = []
        kept: list[HeldEntry] = []
        for entry in state["waiting"]:
            if entry["destination"] == Destination.ESCALATE:
                notification = Notification.model_validate(entry["notification"])
                if escalations.chain_of(notification) in chains:
                    stopped.append(notification)
                    continue
            kept.append(entry)
        if stopped:
            state["waiting"] = kept
            self._store(key, state, now)
            self._count_waiting(key, -len(stopped))
        return stopped

    def release_due(self, partition: int, now: float, tick: int) -> list[Released]:
        """Return every entry of this partition due by ``now`` (call on its tick; ``tick`` is
        the tick's offset), and again those this same tick released before: it is being read
        again, after a worker died before what it sent was safe."""
        if self._next_due.get(partition, float("-inf")) > now:
            return []
        released: list[Released] = []
        next_due = float("inf")
        still_waiting = 0
        # Listed first: entries are rewritten while we go.
        for key, stored in list(self._table.items()):
            if partition_of(key, self._partitions) != partition:
                continue
            state = _copy(stored)
            # Those released by an earlier tick go: whoever reads this later tick read that one
            # first (and released them again), or found it committed, so after what it sent.
            kept = [e for e in state["releasing"] if e["released_by"] >= tick]
            again = [e for e in kept if e["released_by"] == tick]
            due = [e for e in state["waiting"] if e["release_at"] <= now]
            if due or len(kept) < len(state["releasing"]):
                state["waiting"] = [e for e in state["waiting"] if e["release_at"] > now]
                state["releasing"] = kept + [{**e, "released_by": tick} for e in due]
                state["released"].update({_hold_id(e): now for e in due})
                for entry in due:
                    if entry["destination"] == Destination.DIGEST:
                        state["digested"].update(
                            {item: (entry["id"], now) for item in entry["digest"]["item_ids"]}
                        )
                self._store(key, state, now)
            released.extend(Released.of(e) for e in again + due)
            if state["waiting"]:
                next_due = min(next_due, state["waiting"][0]["release_at"])
                still_waiting += len(state["waiting"])
            if state["releasing"]:
                next_due = min(next_due, now)  # the next tick lets them go
        self._next_due[partition] = next_due
        self._waiting[partition] = still_waiting
        return released

    def forget_partitions(self) -> None:
        """After a rebalance the partitions this worker holds changed: rescan on the next ticks."""
        self._next_due.clear()
        self._waiting.clear()

    def held_for(self, recipient_key: bytes) -> list[HeldNotification]:
        """The recipient's held notifications, soonest first (for table inspection)."""
        return [
            HeldNotification(
                e["id"], e["release_at"], Destination(e["destination"]), e["notification"]["channel"]
            )
            for e in self._state(recipient_key)["waiting"]
            if "notification" in e
        ]


# The worker's held table.
held_table = HeldTable(
    app.Table(
        "held",
        default=None,
        # Given to the table itself: Faust picks a table's serializers from its key and value
        # types (bytes: raw, none: JSON), not from a schema; raw keys partition like the topics.
        key_type=bytes,
        partitions=settings.topic_partitions,
    ),
    settings.topic_partitions,
)
HELD_MESSAGES.set_function(held_table.waiting_count)
