"""Tracing: one trace follows a notification from the HTTP request (or the intake topic)
through every stage to the provider call and its delivery event.

The trace context crosses Kafka in each record's headers (W3C ``traceparent`` and
``tracestate``): the records a stage produces carry the context of its span for the
record that led to them (``passed_on``), and each stage starts its spans as children of
the contexts in the records it consumed (``batch_spans``).

``NOTIFYHUB_TRACE_EXPORTER`` decides where spans go (otlp, console). With ``none`` (the
default) nothing would read them, so no span is made at all: the stages only pass the
``traceparent`` a record came with on to the records it leads to, so a trace started by a
producer or an HTTP caller still reaches the delivery events. The SDK's own variables
apply as documented (``OTEL_SDK_DISABLED``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_TRACES_SAMPLER``, ``OTEL_SERVICE_NAME``).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

import faust
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import INVALID_SPAN, SpanKind, Status, StatusCode
from prometheus_client import Histogram

from notifyhub.observability import logs
from notifyhub.observability.metrics import CONSUME_LAG_SECONDS

tracer = trace.get_tracer("notifyhub")

# Whether this process records spans (an exporter is set). Without one the helpers below
# skip the API's spans and header handling altogether: they cost about 50 µs per record
# and stage for nothing.
_enabled = False

# The W3C fields a stage passes on unchanged when it records no spans.
W3C_FIELDS = ("traceparent", "tracestate")

Headers = Mapping[str, bytes]
# The trace context of each record in a batch, by the id of what it carries.
Traces = dict[uuid.UUID, otel_context.Context]


def configure(exporter: str, instance: str) -> None:
    """Install the SDK tracer provider for this process (once, at worker start), when
    there is somewhere to send spans."""
    global _enabled
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    chosen = _exporter(exporter)
    if chosen is None:
        return
    _enabled = True
    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME", "notifyhub"),
            "service.instance.id": f"{socket.gethostname()}:{instance}",
        }
    )
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


class _HeaderGetter(Getter[Headers]):
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


def enabled() -> bool:
    """Whether spans are recorded (an exporter is configured)."""
    return _enabled


def passed_on(consumed: Headers | None, span: trace.Span | None = None) -> tuple[tuple[str, bytes], ...]:
    """Headers for a record produced on behalf of a consumed one: the context of ``span``
    (by default the consumed record's) when spans are recorded, else the consumed record's
    own W3C fields, unchanged."""
    if _enabled:
        context = context_of(consumed) if span is None else context_with(span)
        return tuple(kafka_headers(context).items())
    if not consumed:
        return ()
    passed = []
    for name in W3C_FIELDS:
        value = consumed.get(name)
        if value is not None:
            passed.append((name, value))
    return tuple(passed)


def from_request(http_headers: Mapping[str, str]) -> tuple[tuple[str, bytes], ...]:
    """Headers for a record produced for an HTTP request: the current context (the request's
    span) when spans are recorded, else the caller's own W3C fields, unchanged."""
    if _enabled:
        return tuple(kafka_headers().items())
    return tuple(
        (name, value.encode("latin-1")) for name in W3C_FIELDS if (value := http_headers.get(name))
    )


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


@cache
def _consume_lag(stage: str) -> Histogram:
    # A label lookup costs as much as the observation: each stage keeps its child.
    return CONSUME_LAG_SECONDS.labels(stage=stage)


def observe_consumed(event: faust.EventT[Any], stage: str) -> None:
    """Record how long the event waited in its topic before this stage took it."""
    produced = event.message.timestamp
    if produced:
        _consume_lag(stage).observe(max(0.0, time.time() - produced))


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


@contextmanager
def batch_spans(events: Sequence[faust.EventT[Any]], stage: str) -> Iterator[list[trace.Span | None]]:
    """One span per event of a batch, each a child of its record's trace, all ending with
    the block (Nones when spans are not recorded). Records how long each event waited
    in its topic."""
    for event in events:
        observe_consumed(event, stage)
    if not _enabled:
        yield [None] * len(events)
        return
    spans: list[trace.Span | None] = [
        stage_span(
            f"{stage} process",
            context_of(event.headers),
            kind=SpanKind.CONSUMER,
            **{
                "notifyhub.stage": stage,
                "messaging.system": "kafka",
                "messaging.operation": "process",
                "messaging.destination.name": event.message.topic,
                "messaging.kafka.destination.partition": event.message.partition,
                "messaging.kafka.message.offset": event.message.offset,
            },
        )
        for event in events
    ]
    try:
        yield spans
    finally:
        for span in spans:
            if span is not None:
                span.end()


def annotate(span: trace.Span | None, **attributes: object) -> None:
    """Set attributes on a stage's span (when spans are recorded)."""
    if span is not None:
        span.set_attributes(_clean(attributes))


@contextmanager
def inside(span: trace.Span | None, **about: object) -> Iterator[None]:
    """Make ``span`` current inside the block (what is produced and logged there is in its
    trace); log records made there name the ``about`` fields (stage, tenant, notification)."""
    with logs.about(**about):
        if span is None:
            yield
            return
        with trace.use_span(span, end_on_exit=False):
            yield


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
