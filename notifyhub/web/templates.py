"""``/api/v1/templates``: a tenant's Jinja2 templates, versioned and soft-deleted, with preview."""

from __future__ import annotations

import json
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from faust.web import View
from pydantic import Field, StringConstraints

from notifyhub.app import app, resources
from notifyhub.channels import Channel
from notifyhub.db import templates
from notifyhub.messages import Message, Payload
from notifyhub.rendering import MAX_TEMPLATE_CHARS, RenderError, check_syntax, render
from notifyhub.web.auth import authenticate_tenant
from notifyhub.web.inputs import page_of, parse_body, parse_uuid
from notifyhub.web.responses import ApiError, ok

TemplateName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
# Templates are code a worker compiles and keeps: bound their size.
TemplateSource = Annotated[str, StringConstraints(max_length=MAX_TEMPLATE_CHARS)]
# Live templates per tenant: each is compiled and cached by every worker that renders it,
# and a tenant needs one per kind of message, not one per message.
MAX_TEMPLATES_PER_TENANT = 1000


class TemplateCreate(Message):
    name: TemplateName
    channel: Channel
    subject_template: TemplateSource | None = None
    body_template: Annotated[TemplateSource, StringConstraints(min_length=1)]
    metadata: Payload = Field(default_factory=dict)


class TemplateUpdate(Message):
    name: TemplateName | None = None
    subject_template: TemplateSource | None = None
    body_template: Annotated[TemplateSource, StringConstraints(min_length=1)] | None = None
    metadata: Payload | None = None
    is_active: bool | None = None


# Fields an update may leave out but may not set to null (only the subject is optional).
NOT_NULLABLE = ("name", "body_template", "metadata", "is_active")


class PreviewRequest(Message):
    payload: dict[str, Any] = Field(default_factory=dict)


def _check_syntax(subject: str | None, body: str) -> None:
    try:
        check_syntax(subject, body)
    except RenderError as exc:
        field, _, why = str(exc).partition(": ")
        raise ApiError("VALIDATION_ERROR", "template does not compile", {field: why}) from None


def _name_taken(name: str) -> ApiError:
    return ApiError("CONFLICT", f"a template named {name!r} exists for this channel")


async def _live(request: web.Request, template_id: str) -> tuple[Any, asyncpg.Record]:
    caller = await authenticate_tenant(request)
    row = await templates.get(await resources.db(), caller.tenant_id, parse_uuid(template_id))
    if row is None:
        raise ApiError("NOT_FOUND", "template not found")
    return caller, row


@app.page("/api/v1/templates")
class TemplatesView(View):
    async def post(self, request: web.Request) -> web.Response:
        caller = await authenticate_tenant(request)
        wanted = await parse_body(request, TemplateCreate, "template")
        _check_syntax(wanted.subject_template, wanted.body_template)
        try:
            row = await templates.create_capped(
                await resources.db(),
                caller.tenant_id,
                wanted.name,
                wanted.channel,
                wanted.subject_template,
                wanted.body_template,
                wanted.metadata,
                MAX_TEMPLATES_PER_TENANT,
            )
        except templates.TooManyTemplates as exc:
            raise ApiError(
                "CONFLICT", f"{exc}; delete templates you no longer use to create new ones"
            ) from None
        if row is None:
            raise _name_taken(wanted.name)
        return ok(request, templates.as_api_dict(row), status=201)

    async def get(self, request: web.Request) -> web.Response:
        caller = await authenticate_tenant(request)
        page = page_of(request)
        channel_filter = request.query.get("channel") or None
        if channel_filter is not None and channel_filter not in set(Channel):
            raise ApiError(
                "VALIDATION_ERROR", "invalid filter", {"channel": f"one of {', '.join(Channel)}"}
            )
        rows, total = await templates.page(
            await resources.db(),
            caller.tenant_id,
            Channel(channel_filter) if channel_filter else None,
            page.per_page,
            page.offset,
        )
        return ok(request, [templates.as_api_dict(r) for r in rows], **page.meta(total))


@app.page("/api/v1/templates/{template_id}")
class TemplateView(View):
    async def get(self, request: web.Request, template_id: str) -> web.Response:
        _, row = await _live(request, template_id)
        return ok(request, templates.as_api_dict(row))

    async def put(self, request: web.Request, template_id: str) -> web.Response:
        caller, row = await _live(request, template_id)
        changes = (await parse_body(request, TemplateUpdate, "template")).model_dump(exclude_unset=True)
        nulls = {
            field: "cannot be null"
            for field in NOT_NULLABLE
            if field in changes and changes[field] is None
        }
        if nulls:
            raise ApiError("VALIDATION_ERROR", "invalid template", nulls)
        _check_syntax(
            changes.get("subject_template", row["subject_template"]),
            changes.get("body_template", row["body_template"]),
        )
        try:
            updated = await templates.update(await resources.db(), caller.tenant_id, row["id"], changes)
        except asyncpg.UniqueViolationError:
            raise _name_taken(changes["name"]) from None
        if updated is None:
            raise ApiError("NOT_FOUND", "template not found")
        return ok(request, templates.as_api_dict(updated))

    async def delete(self, request: web.Request, template_id: str) -> web.Response:
        caller = await authenticate_tenant(request)
        if not await templates.soft_delete(
            await resources.db(), caller.tenant_id, parse_uuid(template_id)
        ):
            raise ApiError("NOT_FOUND", "template not found")
        return web.Response(status=204)


@app.page("/api/v1/templates/{template_id}/versions")
class TemplateVersionsView(View):
    async def get(self, request: web.Request, template_id: str) -> web.Response:
        caller, row = await _live(request, template_id)
        page = page_of(request)
        rows, total = await templates.versions(
            await resources.db(), caller.tenant_id, row["id"], page.per_page, page.offset
        )
        return ok(
            request,
            [{**dict(r), "metadata": json.loads(r["metadata"])} for r in rows],
            **page.meta(total),
        )


@app.page("/api/v1/templates/{template_id}/preview")
class TemplatePreviewView(View):
    async def post(self, request: web.Request, template_id: str) -> web.Response:
        _, row = await _live(request, template_id)
        wanted = await parse_body(request, PreviewRequest, "preview request")
        try:
            rendered = render(
                Channel(row["channel"]),
                row["subject_template"],
                row["body_template"],
                wanted.payload,
            )
        except RenderError as exc:
            part, _, why = str(exc).partition(": ")
            raise ApiError("VALIDATION_ERROR", "template does not render", {part: why}) from None
        result = {"body": rendered.body}
        if rendered.subject is not None:
            result["subject"] = rendered.subject
        return ok(request, result)
