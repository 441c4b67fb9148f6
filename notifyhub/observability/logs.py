"""Structured logs: every record carries the trace id and what it is about.

``about(tenant_id=..., notification_id=..., stage=...)`` names what the code below it
works on (contextvars, so concurrent sends keep theirs apart); the trace and span ids
come from the current span. ``NOTIFYHUB_LOG_FORMAT=json`` writes one JSON object per
line, ``text`` the same fields on a readable line.

Never logged, at any level: a notification's subject and body, and secrets (API keys,
tokens, provider credentials); records name ids instead. Libraries that would (Faust logs
each record it sends at debug) are held at info.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from opentelemetry import trace

# Read-only, so no block can change what an enclosing one set.
_about: ContextVar[Mapping[str, str]] = ContextVar("notifyhub_log_about", default=MappingProxyType({}))

# The fields ``about`` takes, in the order a text line shows them.
ABOUT_FIELDS = ("stage", "tenant_id", "notification_id", "request_id")


@contextmanager
def about(**fields: object) -> Iterator[None]:
    """Log records made inside this block name these (None values are left out)."""
    merged = {**_about.get(), **{k: str(v) for k, v in fields.items() if v is not None}}
    token = _about.set(MappingProxyType(merged))
    try:
        yield
    finally:
        _about.reset(token)


class ContextFilter(logging.Filter):
    """Adds the trace id, span id and the ``about`` fields to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        for key, value in _about.get().items():
            setattr(record, key, value)
        return True


_CONTEXT_KEYS = ("trace_id", "span_id", *ABOUT_FIELDS)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger [key=value ...] message`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(
            f"{key}={value}" for key in _CONTEXT_KEYS if (value := getattr(record, key, None))
        )
        line = (
            f"{datetime.fromtimestamp(record.created, UTC).isoformat(timespec='milliseconds')} "
            f"{record.levelname:<7} {record.name}"
            f"{' [' + context + ']' if context else ''} {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def logging_config(level: str, log_format: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the worker (Faust's Worker applies it)."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"structured": {"()": formatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": sys.stdout,
                "filters": ["context"],
                "formatter": "structured",
            }
        },
        # Libraries log message values at debug (Faust prints every record it sends), so
        # NOTIFYHUB_LOG_LEVEL=debug applies to NotifyHub's own loggers; theirs stop at info.
        "loggers": {"notifyhub": {"level": level.upper()}},
        "root": {
            "level": max(logging.INFO, logging.getLevelName(level.upper())),
            "handlers": ["default"],
        },
    }
