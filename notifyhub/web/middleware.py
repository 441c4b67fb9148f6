"""aiohttp middlewares: metrics and a span per request, request ids, CORS, and errors as
envelopes rather than stack traces."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from opentelemetry import propagate, trace
from opentelemetry.trace import INVALID_SPAN, SpanKind, Status, StatusCode

from notifyhub.model.limits import UNSTORABLE_TEXT, is_storable
from notifyhub.observability import logs, tracing
from notifyhub.observability.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS
from notifyhub.observability.tracing import tracer
from notifyhub.runtime.outages import OUTAGES
from notifyhub.web.responses import REQUEST_ID_KEY, ApiError, error

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A client's X-Request-ID is echoed only when it is a sane token; anything else
# (too long, control characters) is replaced so it cannot pollute logs or headers.
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


# Probes and scrapes are counted but not traced: they would drown the traces that matter.
UNTRACED_PATHS = frozenset({"/metrics", "/livez", "/readyz", "/health"})


def _route(request: web.Request) -> str:
    """The route's pattern (``/api/v1/notifications/{id}``): a bounded label, unlike paths."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observability_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts and times every request by route and status, inside a server span that
    continues the caller's trace (W3C ``traceparent``) when it sends one."""
    route = _route(request)
    started = time.perf_counter()
    status = 500
    span = (
        tracer.start_span(
            f"{request.method} {route}",
            context=propagate.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "http.route": route},
        )
        if tracing.enabled() and request.path not in UNTRACED_PATHS
        else INVALID_SPAN
    )
    try:
        # Current while the handler runs: what it produces to Kafka carries this trace.
        with trace.use_span(span, end_on_exit=False):
            response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        HTTP_REQUESTS.labels(method=request.method, route=route, status=str(status)).inc()
        HTTP_REQUEST_SECONDS.labels(method=request.method, route=route).observe(
            time.perf_counter() - started
        )
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get("X-Request-ID", "")
    request_id = given if _REQUEST_ID_PATTERN.match(given) else str(uuid.uuid4())
    request[REQUEST_ID_KEY] = request_id
    with logs.about(request_id=request_id):
        response = await handler(request)
    # A WebSocket has sent its headers with the upgrade already.
    if not response.prepared:
        response.headers["X-Request-ID"] = request_id
    return response


def _check_text_of(request: web.Request) -> None:
    """The path, query and headers as text we can compare, log and store: aiohttp keeps
    bytes that are not UTF-8 as lone surrogates, which fail any later ``encode``."""
    if not is_storable(request.path) or not all(
        is_storable(k) and is_storable(v) for k, v in request.query.items()
    ):
        raise ApiError("VALIDATION_ERROR", "invalid URL", {"url": UNSTORABLE_TEXT})
    for name, value in request.headers.items():
        if not is_storable(value):
            raise ApiError("VALIDATION_ERROR", f"invalid {name} header", {name: UNSTORABLE_TEXT})


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        _check_text_of(request)
        return await handler(request)
    except ApiError as exc:
        return error(request, exc)
    except web.HTTPRequestEntityTooLarge:
        # A 422, as NotifyHub answers: clients written for it check for that, not a 413.
        return error(
            request,
            ApiError("VALIDATION_ERROR", "request body is larger than 1 MB", {"body": "at most 1 MB"}),
        )
    except web.HTTPNotFound:
        return error(request, ApiError("NOT_FOUND", f"no route for {request.path}"))
    except web.HTTPMethodNotAllowed:
        return error(
            request,
            ApiError("METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {request.path}"),
        )
    except web.HTTPException:
        raise
    except OUTAGES as exc:
        logger.warning(
            "dependency unavailable on %s %s (request %s): %r",
            request.method,
            request.path,
            request.get(REQUEST_ID_KEY),
            exc,
        )
        return error(
            request,
            ApiError(
                "SERVICE_UNAVAILABLE",
                "a backing service is unavailable; retry later",
                headers={"Retry-After": "5"},
            ),
        )
    except Exception:
        logger.exception(
            "unhandled error on %s %s (request %s)",
            request.method,
            request.path,
            request.get(REQUEST_ID_KEY),
        )
        return error(request, ApiError("INTERNAL_ERROR", "internal error; quote the request id"))


# The browser inbox may be embedded in a tenant's own site: its routes answer other
# origins. Safe for any origin because they authenticate with a bearer token, never a
# cookie (no credentials are allowed).
CROSS_ORIGIN_PREFIXES = ("/api/v1/inbox",)
CROSS_ORIGIN_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Request-ID",
    "Access-Control-Max-Age": "600",
}


@web.middleware
async def cross_origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(CROSS_ORIGIN_PREFIXES):
        return await handler(request)
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=CROSS_ORIGIN_HEADERS)
    response = await handler(request)
    if not response.prepared:
        response.headers.update(CROSS_ORIGIN_HEADERS)
    return response


def middlewares() -> list[Middleware]:
    """In order: metrics and the span first, so they see every answer; then the request
    id, so error envelopes carry it too; CORS outside the error handling, so error answers
    carry its headers."""
    return [
        observability_middleware,
        request_id_middleware,
        cross_origin_middleware,
        error_middleware,
    ]
