"""Turning request parts into typed values, or into a 422 that names the field."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from notifyhub.web.responses import ApiError, read_json_object, validation_details

ModelT = TypeVar("ModelT", bound=BaseModel)

DEFAULT_PER_PAGE = 20
# NotifyHub let clients ask for any page size; a cap keeps one request from reading a table.
MAX_PER_PAGE = 100
# Deeper pages than this are refused: OFFSET would scan millions of rows (and overflow).
MAX_PAGE = 100_000


async def parse_body(request: web.Request, model: type[ModelT], what: str) -> ModelT:
    """The JSON body as ``model``; 422 with per-field details when it does not fit."""
    return parse_value(model, await read_json_object(request), what)


def parse_value(model: type[ModelT], value: Any, what: str) -> ModelT:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ApiError("VALIDATION_ERROR", f"invalid {what}", validation_details(exc)) from None


def parse_uuid(raw: str, field: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError("VALIDATION_ERROR", f"invalid {field}", {field: "not a UUID"}) from None


@dataclass(frozen=True)
class Page:
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def meta(self, total: int) -> dict[str, int]:
        return {"page": self.page, "per_page": self.per_page, "total": total}


def _positive_int(request: web.Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ApiError("VALIDATION_ERROR", f"invalid {name}", {name: "must be a positive integer"})
    if maximum is not None and value > maximum:
        raise ApiError("VALIDATION_ERROR", f"invalid {name}", {name: f"at most {maximum}"})
    return value


def bounded_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter from ``low`` to ``high`` (``default`` when absent), or a 422."""
    raw = request.query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError("VALIDATION_ERROR", f"invalid {name}", {name: f"an integer from {low} to {high}"})
    return value


def page_of(request: web.Request) -> Page:
    """``page`` (from 1) and ``per_page`` (capped at 100) from the query string."""
    return Page(
        page=_positive_int(request, "page", 1, MAX_PAGE),
        per_page=min(_positive_int(request, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE),
    )
