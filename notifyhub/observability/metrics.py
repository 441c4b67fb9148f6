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

# --- HTTP API -------------------------------------------------------------------------
# Routes are labelled by their pattern (/api/v1/notifications/{id}), never the raw path,
# so one label value stands for one route whatever ids clients send.
HTTP_REQUESTS = Counter(
    "notifyhub_http_requests_total",
    "HTTP requests answered, by method, route pattern and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "notifyhub_http_request_duration_seconds",
    "How long HTTP requests took to answer, by method and route pattern.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RATE_LIMIT_DECISIONS = Counter(
    "notifyhub_ratelimit_decisions_total",
    "Rate-limit decisions by scope (api-key, recipient frequency cap, provider) and outcome "
    "(allowed, limited, delayed, failed_open, failed_closed).",
    ["scope", "decision"],
)

# --- Pipeline -------------------------------------------------------------------------
NOTIFICATIONS_ENQUEUED = Counter(
    "notifyhub_notifications_enqueued_total",
    "Notifications accepted into the pipeline (stored as queued or scheduled), by channel.",
    ["channel"],
)
NOTIFICATIONS_PROCESSED = Counter(
    "notifyhub_notifications_processed_total",
    "Status transitions recorded by the delivery-events stage, by channel and status.",
    ["channel", "status"],
)
CONSUME_LAG_SECONDS = Histogram(
    "notifyhub_queue_consume_lag_seconds",
    "Time from a record's production to its consumption, by stage.",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
CONSUMER_LAG_MESSAGES = Gauge(
    "notifyhub_consumer_lag_messages",
    "Records not yet consumed in the partitions this worker owns, by topic.",
    ["topic"],
)
TEMPLATE_RENDER_SECONDS = Histogram(
    "notifyhub_template_render_duration_seconds",
    "How long rendering a notification's templates took, by channel.",
    ["channel"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
HELD_MESSAGES = Gauge(
    "notifyhub_held_messages",
    "Messages waiting in the held stage (scheduled, quiet hours, retries, digest windows, "
    "escalation steps) on this worker.",
)
RECEIPTS = Counter(
    "notifyhub_receipts_total",
    "Provider receipts applied, by provider and the status they reported (or waiting: its "
    "message not known yet; unmatched: never found).",
    ["provider", "outcome"],
)
RECEIPT_OUTBOX = Counter(
    "notifyhub_receipt_outbox_total",
    "Receipts Kafka would not take from a receiver, by what happened: kept (in PostgreSQL), "
    "published (by the sweep, once Kafka was back).",
    ["action"],
)
SWEPT_NOTIFICATIONS = Counter(
    "notifyhub_swept_notifications_total",
    "Notifications the sweep found stuck in pending, queued or processing, by what it did: "
    "redriven (produced to enrich again), failed (still stuck after its re-drive).",
    ["action"],
)
