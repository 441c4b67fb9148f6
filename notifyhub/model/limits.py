"""The one set of limits on what a client may send, the same for the HTTP API and for
producers writing to the intake topic, so that nothing the API accepted can fail to
parse in a later stage (whose JSON parser stops near 200 levels) or to be stored.

``json_problem`` walks a decoded JSON value once; ``loads`` is the HTTP API's strict
decoder (no ``NaN``, no 5,000-digit integers, no recursion error on deep nesting).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

# Levels of objects and arrays inside a payload (the payload itself is level 1).
MAX_JSON_DEPTH = 32
# Integers a payload may hold: what a 64-bit signed integer can (JSON parsers elsewhere,
# e.g. a webhook receiver's, lose precision beyond 2**53; beyond 64 bits most fail).
MIN_INTEGER = -(2**63)
MAX_INTEGER = 2**63 - 1
MAX_KEY_CHARS = 255
# One notification's payload, measured as its characters of text (keys and strings) plus
# eight per other value: the size of its JSON, give or take the punctuation.
MAX_PAYLOAD_SIZE = 64 * 1024
# A bulk request's payloads once each recipient's is merged with the shared one: the
# request body is at most 1 MB, but a shared payload is copied once per recipient.
MAX_BULK_PAYLOAD_SIZE = 4 * 1024 * 1024
# scheduled_at before this is a client's mistake (year 1 overflowed time zone arithmetic).
EARLIEST_SCHEDULED_AT = datetime(2000, 1, 1, tzinfo=UTC)

UNSTORABLE_TEXT = "text may not contain NUL characters or unpaired surrogates"


class Unacceptable(ValueError):
    """A value over one of the limits: ``field`` is its path, the message says which."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def is_storable(text: str) -> bool:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot encode a lone surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def has_line_break(text: str) -> bool:
    """CR or LF: never allowed where the text may end up in a mail or HTTP header."""
    return "\r" in text or "\n" in text


def json_problem(
    value: Any,
    path: str,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    max_size: int | None = MAX_PAYLOAD_SIZE,
) -> tuple[str, str] | None:
    """The path and problem of the first part of ``value`` over a limit, else None.

    Iterative, so a value nested thousands deep cannot exhaust the stack here.
    """
    size = 0
    pending: list[tuple[Any, str, int]] = [(value, path, 1)]
    while pending:
        item, where, depth = pending.pop()
        if isinstance(item, str):
            if not is_storable(item):
                return where, UNSTORABLE_TEXT
            size += len(item)
        elif isinstance(item, bool) or item is None:
            size += 8
        elif isinstance(item, int):
            if not MIN_INTEGER <= item <= MAX_INTEGER:
                return where, "integers must fit in 64 bits"
            size += 8
        elif isinstance(item, _HugeInteger):
            return where, "integers must fit in 64 bits"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where, "NaN and Infinity are not JSON numbers"
            size += 8
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return where, f"nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str) or not is_storable(key):
                        return where, UNSTORABLE_TEXT
                    if len(key) > MAX_KEY_CHARS:
                        return where, f"keys are at most {MAX_KEY_CHARS} characters"
                    size += len(key)
                    pending.append((child, f"{where}.{key}", depth + 1))
            else:
                pending.extend((child, f"{where}.{i}", depth + 1) for i, child in enumerate(item))
        else:
            return where, f"not a JSON value ({type(item).__name__})"
        if max_size is not None and size > max_size:
            return path, f"larger than {max_size // 1024} KB"
    return None


def payload_size(value: Any) -> int:
    """The size ``json_problem`` measures, for a value already found within the limits."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(k) + payload_size(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(payload_size(v) for v in value)
    return 8


class _HugeInteger:
    """An integer literal too long to convert: kept as a marker, so that ``json_problem``
    can name where it is (Python refuses over 4,300 digits with an error of its own)."""


def _bounded_int(digits: str) -> int | _HugeInteger:
    return _HugeInteger() if len(digits) > 21 else int(digits)


def loads(raw: bytes) -> Any:
    """JSON as the HTTP API reads it: a document, or Unacceptable saying what is wrong.

    ``NaN``, ``Infinity`` and over-long integers are decoded (as float and a marker) so
    that ``json_problem`` refuses them naming their field.
    """
    try:
        return json.loads(raw, parse_int=_bounded_int)
    except Unacceptable:
        raise
    except UnicodeDecodeError:
        raise Unacceptable("body", "not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise Unacceptable("body", f"not valid JSON: {exc}") from None
    except RecursionError:
        raise Unacceptable("body", f"nested deeper than {MAX_JSON_DEPTH} levels") from None


def scheduled_at_problem(when: datetime) -> str | None:
    """Why a client's ``scheduled_at`` cannot be used, or None."""
    try:
        in_utc = when.astimezone(UTC)
    except (OverflowError, ValueError):
        return "out of range"
    if in_utc < EARLIEST_SCHEDULED_AT:
        return f"on or after {EARLIEST_SCHEDULED_AT:%Y-%m-%d}"
    return None
