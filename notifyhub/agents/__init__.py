"""The pipeline's stream processors, one module per stage:

intake (Kafka producers) → accept (HTTP API and intake) → enrich → send (one agent per
channel) → delivery events → webhooks; held (scheduled and quiet-hours notifications), dead letters
and preference updates (which feed enrich's preferences table) beside. Each stage with
lanes runs one agent per lane. Importing this package registers every agent.
"""

from notifyhub.agents import (
    accept,
    dead_letters,
    delivery_events,
    enrich,
    held,
    intake,
    preferences,
    send,
    webhooks,
)

__all__ = [
    "accept",
    "dead_letters",
    "delivery_events",
    "enrich",
    "held",
    "intake",
    "preferences",
    "send",
    "webhooks",
]
