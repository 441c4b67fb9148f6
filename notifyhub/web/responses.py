"""NotifyHub's JSON envelope: ``{success, data | error, meta: {request_id, ...}}``."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError
from pydantic_core import to_json

from notifyhub.model.limits import (
    MAX_JSON_DEPTH,
    Unacceptable,
    json_problem,
    loads,
)

REQUEST_ID_KEY = "request_id"

# Error code → HTTP status, as in NotifyHub's contract.
ERROR_STATUS = {
    "VALIDATION_ERROR": 422,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "RATE_LIMITED": 429,
    "INTERNAL_ERROR": 500,
    "SERVICE_UNAVAILABLE": 503,
}


class ApiError(Exception):
    """An error that reaches the client as an envelope: what was wrong and what to do."""

    def __init__(
        self,
        code: str,
        message: str,
        details: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.code]


def _dumps(body: Any) -> str:
    # pydantic-core's encoder: the same compact JSON as json.dumps(to_jsonable_python(...)),
    # in a fifth of the time.
    return to_json(body).decode()


def _meta(request: web.Request, extra: dict[str, Any] | None) -> dict[str, Any]:
    return {"request_id": request.get(REQUEST_ID_KEY), **(extra or {})}


def ok(request: web.Request, data: Any, status: int = 200, **meta: Any) -> web.Response:
    body = {"success": True, "data": data, "meta": _meta(request, meta)}
    return web.Response(text=_dumps(body), status=status, content_type="application/json")


def error(request: web.Request, exc: ApiError) -> web.Response:
    problem: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details:
        problem["details"] = exc.details
    body = {"success": False, "error": problem, "meta": _meta(request, None)}
    return web.Response(
        text=_dumps(body), status=exc.status, content_type="application/json", headers=exc.headers
    )


def validation_details(exc: ValidationError) -> dict[str, str]:
    """Field path → problem, e.g. ``{"priority": "Input should be less than or equal to 10"}``."""
    details: dict[str, str] = {}
    for problem in exc.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"]) or "body"
        message = "unknown field" if problem["type"] == "extra_forbidden" else problem["msg"]
        details.setdefault(field, message)
    return details


# A guard against pathological nesting in any body; each model then checks its payloads
# against the precise limit (MAX_JSON_DEPTH from the payload down) and names the field.
BODY_DEPTH = 2 * MAX_JSON_DEPTH


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 422 that says what is wrong with it.

    The limits that apply everywhere (``notifyhub.model.limits``) are checked here for the whole
    body; each model checks its payloads against their own, tighter bounds.
    """
    raw = await request.read()
    try:
        body = loads(raw) if raw else None
    except Unacceptable as exc:
        raise ApiError(
            "VALIDATION_ERROR", "request body is not valid JSON", {exc.field: exc.problem}
        ) from None
    if not isinstance(body, dict):
        raise ApiError(
            "VALIDATION_ERROR",
            "request body must be a JSON object",
            {"body": "expected a JSON object"},
        )
    problem = json_problem(body, "body", max_depth=BODY_DEPTH, max_size=None)
    if problem is not None:
        field, text = problem
        raise ApiError("VALIDATION_ERROR", "request body is over a limit", {_field(field): text})
    return body


def _field(path: str) -> str:
    """``body.payload.a`` → ``payload.a``: details name fields as the client sent them."""
    return path.removeprefix("body.") if path != "body" else path
