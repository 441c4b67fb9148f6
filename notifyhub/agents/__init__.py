"""The pipeline's stream processors, one module per stage:

intake (Kafka producers; the HTTP API stores its own) → enrich → send (one agent per
channel) → delivery events (statuses and webhook fan-out) → webhooks; held (scheduled,
quiet hours, retries, digests, escalations), dead letters, preference updates (which feed
enrich's preferences table) and receipts (what providers reported afterwards, fed to
delivery events) beside. Each stage with lanes runs one agent per lane. Importing this
package registers every agent.
"""

from notifyhub.agents import (
    dead_letters,
    delivery_events,
    enrich,
    held,
    intake,
    preferences,
    receipts,
    send,
    sweep,
    topics,
    webhooks,
)

__all__ = [
    "dead_letters",
    "delivery_events",
    "enrich",
    "held",
    "intake",
    "preferences",
    "receipts",
    "send",
    "sweep",
    "topics",
    "webhooks",
]
