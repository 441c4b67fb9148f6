"""Tracing: one trace follows a notification from the HTTP request (or the intake topic)
through every stage to the provider call and its delivery event.

The trace context crosses Kafka in each record's headers (W3C ``traceparent`` and
``tracestate``): ``app.enqueue``/``app.publish`` write the current context into the
records they produce, and each stage starts its span as a child of the context in the
record it consumed (``consuming``). Inside a stage the context is the current one
(contextvars), so whatever the stage produces carries it on.

Spans get their ids from the OpenTelemetry SDK whenever tracing is on, so trace ids reach
the logs and the headers even without an exporter; ``NOTIFYHUB_TRACE_EXPORTER`` decides
where spans go (none: nowhere, and then none is recorded; otlp; console). The SDK's own
variables apply as documented (``OTEL_SDK_DISABLED``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_TRACES_SAMPLER``, ``OTEL_SERVICE_NAME``).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import faust
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import INVALID_SPAN, SpanKind, Status, StatusCode

from notifyhub import logs
from notifyhub.metrics import CONSUME_LAG_SECONDS

tracer = trace.get_tracer("notifyhub")

# Whether this process installed the SDK. Without it (OTEL_SDK_DISABLED, or code that never
# called configure) the helpers below skip the API's no-op spans and header handling
# altogether: they cost about 50 µs per record and stage for nothing.
_enabled = False

Headers = Mapping[str, bytes]
# The trace context of each record in a batch, by the id of what it carries.
Traces = dict[uuid.UUID, otel_context.Context]


def configure(exporter: str, instance: str) -> None:
    """Install the SDK tracer provider for this process (once, at worker start)."""
    global _enabled
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    _enabled = True
    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME", "notifyhub"),
            "service.instance.id": f"{socket.gethostname()}:{instance}",
        }
    )
    chosen = _exporter(exporter)
    if chosen is None:
        # Nothing would read the spans: none is recorded, but each still gets its ids, so
        # logs carry trace ids and the context still crosses Kafka (about a third cheaper).
        trace.set_tracer_provider(TracerProvider(resource=resource, sampler=ALWAYS_OFF))
        return
    # The sampler is the SDK's (OTEL_TRACES_SAMPLER; by default every trace, or as the
    # caller's traceparent says).
    provider = TracerProvider(resource=resource)
    # Batched and off the event loop: a slow or absent collector never holds a send.
    provider.add_span_processor(BatchSpanProcessor(chosen))
    trace.set_tracer_provider(provider)


def _exporter(name: str) -> SpanExporter | None:
    if name == "otlp":
        # Imported only when used: it pulls in protobuf and requests.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    return None


def shutdown() -> None:
    """Flush the spans still batched (at worker stop)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


class _HeaderGetter:
    """Reads W3C headers from a Kafka record's headers (bytes values)."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        return [value.decode("latin-1") if isinstance(value, bytes) else str(value)]

    def keys(self, carrier: Headers) -> list[str]:
        return list(carrier.keys())


_GETTER = _HeaderGetter()
_EMPTY = otel_context.Context()


def carrier(context: otel_context.Context | None = None) -> dict[str, str]:
    """The W3C fields (``traceparent``, ``tracestate``) of ``context``, the current one by
    default, as text: to keep with something that is produced later (a held notification)."""
    fields: dict[str, str] = {}
    if _enabled:
        propagate.inject(fields, context=context)
    return fields


def as_headers(fields: Mapping[str, str]) -> dict[str, bytes]:
    """Kafka record headers from W3C fields."""
    return {key: value.encode("latin-1") for key, value in fields.items()}


def kafka_headers(context: otel_context.Context | None = None) -> dict[str, bytes]:
    """Headers carrying ``context`` (the current one by default) into a Kafka record."""
    return as_headers(carrier(context))


def context_of(headers: Headers | None) -> otel_context.Context:
    """The trace context a consumed record carries (an empty one when it carries none)."""
    if not _enabled:
        return _EMPTY
    return propagate.extract(headers or {}, getter=_GETTER, context=otel_context.Context())


def context_with(span: trace.Span) -> otel_context.Context:
    """A context whose current span is ``span``: records produced under it are its children."""
    return trace.set_span_in_context(span, otel_context.Context())


def observe_consumed(event: faust.EventT, stage: str) -> None:
    """Record how long the event waited in its topic before this stage took it."""
    produced = event.message.timestamp
    if produced:
        CONSUME_LAG_SECONDS.labels(stage=stage).observe(max(0.0, time.time() - produced))


@contextmanager
def consuming(
    event: faust.EventT, stage: str, *, tenant_id: object = None, notification_id: object = None
) -> Iterator[trace.Span]:
    """A span for one stage's work on one consumed record, as a child of the record's
    trace context, and current while the stage works on it (log records made meanwhile
    name the stage, and the tenant and notification when given)."""
    observe_consumed(event, stage)
    message = event.message
    with working_on(
        context_of(event.headers),
        stage,
        tenant_id=tenant_id,
        notification_id=notification_id,
        **{
            "messaging.system": "kafka",
            "messaging.operation": "process",
            "messaging.destination.name": message.topic,
            "messaging.kafka.destination.partition": message.partition,
            "messaging.kafka.message.offset": message.offset,
        },
    ) as span:
        yield span


@contextmanager
def working_on(
    parent: otel_context.Context,
    stage: str,
    *,
    tenant_id: object = None,
    notification_id: object = None,
    **attributes: object,
) -> Iterator[trace.Span]:
    """A stage's span for one notification, a child of ``parent`` and current inside the
    block (for stages that take records in batches and keep each record's context)."""
    if not _enabled:
        with logs.about(stage=stage, tenant_id=tenant_id, notification_id=notification_id):
            yield INVALID_SPAN
        return
    with (
        tracer.start_as_current_span(
            f"{stage} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=_clean(
                {
                    "notifyhub.stage": stage,
                    "notifyhub.tenant_id": tenant_id,
                    "notifyhub.notification_id": notification_id,
                    **attributes,
                }
            ),
        ) as span,
        logs.about(stage=stage, tenant_id=tenant_id, notification_id=notification_id),
    ):
        yield span


@contextmanager
def within(context: otel_context.Context | None) -> Iterator[None]:
    """Make ``context`` current inside the block (records produced there carry it)."""
    if context is None:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


def stage_span(
    name: str, parent: otel_context.Context, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any
) -> trace.Span:
    """A span the caller ends itself (for work on a batch, where each record has its own
    parent and the spans end together)."""
    if not _enabled:
        return INVALID_SPAN
    return tracer.start_span(name, context=parent, kind=kind, attributes=_clean(attributes))


def record_failure(span: trace.Span, description: str) -> None:
    span.set_status(Status(StatusCode.ERROR, description))


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Span attributes take str, bool, int and float; ids become strings, None is dropped."""
    return {
        key: value if isinstance(value, str | bool | int | float) else str(value)
        for key, value in attributes.items()
        if value is not None
    }
