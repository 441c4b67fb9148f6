"""The published message contracts match the code that reads them (pure, no services)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from notifyhub.model.messages import DeadLetter, DeliveryEvent, DeviceTokenEvent, IntakeMessage

DOCS = Path(__file__).resolve().parents[2] / "docs"
CONTRACTS: dict[str, type[BaseModel]] = {
    "intake-message.schema.json": IntakeMessage,
    "delivery-event.schema.json": DeliveryEvent,
    "dead-letter.schema.json": DeadLetter,
    "device-token-event.schema.json": DeviceTokenEvent,
}


def published_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_the_committed_schema_is_the_one_the_code_enforces(name: str) -> None:
    committed = json.loads((DOCS / name).read_text())
    assert committed == published_schema(CONTRACTS[name]), (
        f"docs/{name} is stale; regenerate it with: "
        f".venv/bin/python -c 'from tests.model.test_contracts import write_all; write_all()'"
    )


def write_all() -> None:
    """Regenerate the committed schema files from the models."""
    for name, model in CONTRACTS.items():
        (DOCS / name).write_text(json.dumps(published_schema(model), indent=2) + "\n")
