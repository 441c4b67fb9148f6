"""The one set of input limits (``notifyhub.model.limits``) as the models apply them: the same
answer for the HTTP API and the Kafka intake contract. Pure logic, no services."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from notifyhub.model import limits
from notifyhub.model.messages import IntakeMessage, NotificationRequest
from notifyhub.web.responses import validation_details


def _nested(depth: int) -> dict[str, Any]:
    payload: dict[str, Any] = {"body": "x"}
    level = payload
    for _ in range(depth - 1):
        level["a"] = {}
        level = level["a"]
    return payload


def _problems(**fields: Any) -> dict[str, str]:
    request = {"channel": "email", "recipient_id": "r", "payload": {"body": "x"}, **fields}
    try:
        NotificationRequest.model_validate(request)
    except ValidationError as exc:
        return validation_details(exc)
    return {}


def _intake_json(payload_json: str) -> str:
    envelope = f'"tenant_id": "{uuid.uuid4()}", "channel": "email", "recipient_id": "r"'
    return f'{{{envelope}, "payload": {payload_json}}}'


def _kafka_problems(raw: str) -> str | None:
    try:
        IntakeMessage.model_validate_json(raw)
    except ValidationError as exc:
        return str(exc)
    return None


HOSTILE_FIELDS = [
    ("payload", {"payload": {"body": "x", "n": float("nan")}}, "NaN"),
    ("payload", {"payload": {"body": "x", "n": float("inf")}}, "NaN and Infinity"),
    ("payload", {"payload": {"body": "x", "n": 10**30}}, "64 bits"),
    ("payload", {"payload": _nested(limits.MAX_JSON_DEPTH + 1)}, "nested deeper"),
    ("payload", {"payload": {"body": "x" * (limits.MAX_PAYLOAD_SIZE + 1)}}, "larger than"),
    ("payload", {"payload": {"body": "x", "k" * 300: 1}}, "keys are at most"),
    ("payload", {"payload": {"body": "a\x00b"}}, "NUL"),
    ("payload", {"payload": {"body": "x", "subject": "Hi\r\nBcc: all@example.com"}}, "CR or LF"),
    ("scheduled_at", {"scheduled_at": "0001-01-01T00:00:00+05:00"}, "out of range"),
    ("scheduled_at", {"scheduled_at": "1999-12-31T23:59:59Z"}, "on or after"),
    ("recipient_address", {"recipient_address": "a@example.com, b@example.com"}, "single e-mail"),
    ("recipient_address", {"recipient_address": "a@example.com\r\nBcc: b@example.com"}, "CR, LF"),
    ("recipient_address", {"channel": "sms", "recipient_address": "5550100"}, "E.164"),
]


@pytest.mark.parametrize(("field", "fields", "says"), HOSTILE_FIELDS)
def test_a_value_over_a_limit_is_refused_naming_its_field(
    field: str, fields: dict[str, Any], says: str
) -> None:
    problems = _problems(**fields)
    assert field in problems, problems
    assert says in problems[field]


def test_values_within_the_limits_pass() -> None:
    assert _problems(payload=_nested(limits.MAX_JSON_DEPTH)) == {}
    assert _problems(payload={"body": "x", "n": 2**63 - 1, "m": -(2**63), "f": 1.5}) == {}
    assert _problems(recipient_address="ada@example.com") == {}
    assert _problems(channel="sms", recipient_address="+15550100") == {}
    assert _problems(scheduled_at="2026-01-01T00:00:00+09:00") == {}


def test_a_display_name_keeps_only_the_address() -> None:
    request = NotificationRequest.model_validate(
        {
            "channel": "email",
            "recipient_id": "r",
            "recipient_address": "Ada <ada@example.com>",
            "payload": {"body": "x"},
        }
    )
    assert request.recipient_address == "ada@example.com"


@pytest.mark.parametrize(
    "payload_json",
    ['{"body": "x", "n": NaN}', '{"body": "x", "n": Infinity}', '{"body": "x", "n": ' + "9" * 40 + "}"],
)
def test_the_kafka_contract_refuses_what_the_api_refuses(payload_json: str) -> None:
    raw = _intake_json(payload_json)
    assert "payload" in (_kafka_problems(raw) or "")


def test_the_kafka_contract_refuses_a_payload_nested_too_deep() -> None:
    message = {
        "tenant_id": str(uuid.uuid4()),
        "channel": "email",
        "recipient_id": "r",
        "payload": _nested(40),
    }
    assert "nested deeper" in (_kafka_problems(json.dumps(message)) or "")


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b'{"a": "\xc0\xaf"}', "not UTF-8"),
        (b'{"a": ', "not valid JSON"),
    ],
)
def test_the_http_decoder_refuses_what_json_loads_would_let_through_or_crash_on(
    raw: bytes, says: str
) -> None:
    with pytest.raises(limits.Unacceptable) as refused:
        limits.loads(raw)
    assert says in refused.value.problem


@pytest.mark.parametrize(
    ("raw", "field", "says"),
    [
        (b'{"payload": {"n": NaN}}', "body.payload.n", "NaN and Infinity"),
        (b'{"a": [1, -Infinity]}', "body.a.1", "NaN and Infinity"),
        (b'{"priority": ' + b"1" * 5000 + b"}", "body.priority", "64 bits"),
    ],
)
def test_what_the_decoder_lets_through_the_walk_refuses_naming_the_field(
    raw: bytes, field: str, says: str
) -> None:
    problem = limits.json_problem(limits.loads(raw), "body", max_size=None)
    assert problem is not None
    assert problem[0] == field
    assert says in problem[1]


def test_the_walk_survives_any_depth_without_recursion() -> None:
    deep: list[Any] = []
    level = deep
    for _ in range(100_000):
        level.append([])
        level = level[0]
    assert limits.json_problem(deep, "body", max_size=None) == (
        "body" + ".0" * limits.MAX_JSON_DEPTH,
        f"nested deeper than {limits.MAX_JSON_DEPTH} levels",
    )


def test_duplicate_keys_keep_the_last_value_in_both_parsers() -> None:
    raw = _intake_json('{"body": "a", "body": "b"}')
    assert IntakeMessage.model_validate_json(raw).payload["body"] == "b"
    assert limits.loads(raw.encode())["payload"]["body"] == "b"
