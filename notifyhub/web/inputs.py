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


def _query_int(request: web.Request, name: str) -> int | None:
    """The query parameter as an integer; None when it is absent or not a number."""
    try:
        return int(request.query.get(name, ""))
    except ValueError:
        return None


def int_or_default(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter from ``low`` to ``high``; ``default`` when it is absent,
    not a number or out of range. NotifyHub reads page sizes this way (never a 422), and
    clients written for it rely on that."""
    value = _query_int(request, name)
    return value if value is not None and low <= value <= high else default


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
    """``page`` and ``per_page`` from the query string, read as NotifyHub reads them: absent,
    not a number or below 1 is the default (page 1, 20 a page). Beyond NotifyHub, a
    ``per_page`` above 100 is 100 and a page past ``MAX_PAGE`` is a 422."""
    page = _query_int(request, "page")
    if page is not None and page > MAX_PAGE:
        raise ApiError("VALIDATION_ERROR", "invalid page", {"page": f"at most {MAX_PAGE}"})
    per_page = _query_int(request, "per_page")
    return Page(
        page=page if page is not None and page >= 1 else 1,
        per_page=min(per_page, MAX_PER_PAGE)
        if per_page is not None and per_page >= 1
        else DEFAULT_PER_PAGE,
    )
