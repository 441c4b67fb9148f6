"""Prometheus metrics of the pipeline (served by every worker at ``GET /metrics``).

Names follow NotifyHub's (``notifyhub_`` prefix) so its dashboards keep working.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PROVIDER_SENDS = Counter(
    "notifyhub_provider_send_total",
    "Provider calls, by outcome (delivered, temporary_failure, permanent_failure).",
    ["channel", "provider", "outcome"],
)
PROVIDER_SEND_SECONDS = Histogram(
    "notifyhub_provider_send_duration_seconds",
    "How long provider calls took, by outcome.",
    ["channel", "provider", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BREAKER_STATE = Gauge(
    "notifyhub_circuit_breaker_state",
    "A provider's circuit breaker in this worker: 0 closed, 1 open, 2 half-open.",
    ["provider"],
)
BREAKER_TRANSITIONS = Counter(
    "notifyhub_circuit_breaker_transitions_total",
    "Circuit breaker state changes, by the state entered.",
    ["provider", "state"],
)
SEND_RETRIES = Counter(
    "notifyhub_send_retries_total",
    "Sends scheduled for another attempt (temporary failure or every breaker open).",
    ["channel"],
)
DLQ_MESSAGES = Counter(
    "notifyhub_dlq_messages_total",
    "Messages sent to a dead-letter topic, by channel ('' when unknown).",
    ["channel"],
)
DLQ_REPLAYS = Counter(
    "notifyhub_dlq_replayed_total",
    "Dead letters replayed through the admin API.",
    ["channel"],
)
INAPP_WS_CONNECTIONS = Gauge(
    "notifyhub_inapp_ws_connections",
    "Inbox WebSockets open on this worker.",
)
WEBHOOK_DELIVERED = Counter(
    "notifyhub_webhook_delivered_total", "Webhook deliveries a receiver accepted (2xx).", ["event"]
)
WEBHOOK_FAILED = Counter(
    "notifyhub_webhook_failed_total",
    "Webhook delivery attempts that failed, by whether another attempt follows.",
    ["event", "final"],
)
