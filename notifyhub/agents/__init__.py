"""The pipeline's stream processors, one module per stage:

intake (Kafka producers; the HTTP API stores its own) → enrich → send (one agent per
channel) → delivery events (statuses and webhook fan-out) → webhooks; held (scheduled,
quiet hours, retries), dead letters and preference updates (which feed enrich's
preferences table) beside. Each stage with
lanes runs one agent per lane. Importing this package registers every agent.
"""

from notifyhub.agents import (
    dead_letters,
    delivery_events,
    enrich,
    held,
    intake,
    preferences,
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
    "send",
    "sweep",
    "topics",
    "webhooks",
]
