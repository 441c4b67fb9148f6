"""``/api/v1/templates``: a tenant's Jinja2 templates, versioned and soft-deleted, with preview.

A template may have locale variants (``locales``: language tag → its own subject and body
template); a notification is rendered in the one that fits its locale (see
``notifyhub.content.rendering.pick_locale``), else in the template's default texts.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from faust.web import View
from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from notifyhub.app import app, resources
from notifyhub.content.rendering import (
    MAX_TEMPLATE_CHARS,
    RenderError,
    check_syntax,
    pick_locale,
    render,
)
from notifyhub.db import templates
from notifyhub.model.channels import Channel
from notifyhub.model.messages import Locale, Message, Payload
from notifyhub.web.auth import authenticate_tenant
from notifyhub.web.inputs import page_of, parse_body, parse_uuid
from notifyhub.web.responses import ApiError, ok

TemplateName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
# Templates are code a worker compiles and keeps: bound their size.
TemplateSource = Annotated[str, StringConstraints(max_length=MAX_TEMPLATE_CHARS)]
# Live templates per tenant: each is compiled and cached by every worker that renders it,
# and a tenant needs one per kind of message, not one per message.
MAX_TEMPLATES_PER_TENANT = 1000
# Locale variants per template: each is compiled and cached like a template of its own, and
# a tenant needs one per language it writes in.
MAX_TEMPLATE_LOCALES = 50
BodySource = Annotated[TemplateSource, StringConstraints(min_length=1)]


class LocaleVariant(Message):
    subject_template: TemplateSource | None = None
    body_template: BodySource


def _distinct_and_bounded(locales: dict[str, LocaleVariant]) -> dict[str, LocaleVariant]:
    if len(locales) > MAX_TEMPLATE_LOCALES:
        raise PydanticCustomError(
            "too_many_locales",
            "at most {most} locale variants, not {count}",
            {"most": MAX_TEMPLATE_LOCALES, "count": len(locales)},
        )
    seen: dict[str, str] = {}
    for tag in locales:
        if tag.lower() in seen:
            raise PydanticCustomError(
                "locale_twice",
                "'{tag}' and '{other}' are the same locale (tags are case-insensitive)",
                {"tag": tag, "other": seen[tag.lower()]},
            )
        seen[tag.lower()] = tag
    return locales


Locales = Annotated[
    dict[Locale, LocaleVariant],
    Field(
        description="Locale variants by language tag (`en`, `pt-BR`): each its own "
        "subject_template and body_template."
    ),
    AfterValidator(_distinct_and_bounded),
]


class TemplateCreate(Message):
    name: TemplateName
    channel: Channel
    subject_template: TemplateSource | None = None
    body_template: BodySource
    locales: Locales = Field(default_factory=dict)
    metadata: Payload = Field(default_factory=dict)


class TemplateUpdate(Message):
    name: TemplateName | None = None
    subject_template: TemplateSource | None = None
    body_template: BodySource | None = None
    # Replaces all the variants; {} removes them.
    locales: Locales | None = None
    metadata: Payload | None = None
    is_active: bool | None = None


# Fields an update may leave out but may not set to null (only the subject is optional).
NOT_NULLABLE = ("name", "body_template", "locales", "metadata", "is_active")


class PreviewRequest(Message):
    payload: dict[str, Any] = Field(default_factory=dict)
    locale: Locale | None = None


def _check_syntax(subject: str | None, body: str, locales: dict[str, dict[str, Any]]) -> None:
    """Refuse a template (or one of its variants) that does not compile, naming the field."""
    parts = [("", subject, body)] + [
        (f"locales.{tag}.", texts.get("subject_template"), texts["body_template"])
        for tag, texts in locales.items()
    ]
    for prefix, part_subject, part_body in parts:
        try:
            check_syntax(part_subject, part_body)
        except RenderError as exc:
            field, _, why = str(exc).partition(": ")
            raise ApiError(
                "VALIDATION_ERROR", "template does not compile", {prefix + field: why}
            ) from None


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
        locales = {tag: variant.model_dump() for tag, variant in wanted.locales.items()}
        _check_syntax(wanted.subject_template, wanted.body_template, locales)
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
                locales,
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
            changes.get("locales", {}),
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
        deleted = await templates.soft_delete(
            await resources.db(), caller.tenant_id, parse_uuid(template_id)
        )
        if deleted is None:
            raise ApiError("NOT_FOUND", "template not found")
        return ok(request, templates.as_api_dict(deleted))


@app.page("/api/v1/templates/{template_id}/versions")
class TemplateVersionsView(View):
    async def get(self, request: web.Request, template_id: str) -> web.Response:
        caller, row = await _live(request, template_id)
        page = page_of(request)
        rows, total = await templates.versions(
            await resources.db(), caller.tenant_id, row["id"], page.per_page, page.offset
        )
        return ok(request, [templates.as_api_dict(r) for r in rows], **page.meta(total))


@app.page("/api/v1/templates/{template_id}/preview")
class TemplatePreviewView(View):
    async def post(self, request: web.Request, template_id: str) -> web.Response:
        _, row = await _live(request, template_id)
        wanted = await parse_body(request, PreviewRequest, "preview request")
        variants = json.loads(row["locales"])
        locale = pick_locale(variants, wanted.locale)
        texts = variants[locale] if locale is not None else row
        try:
            rendered = render(
                Channel(row["channel"]),
                texts["subject_template"],
                texts["body_template"],
                wanted.payload,
            )
        except RenderError as exc:
            part, _, why = str(exc).partition(": ")
            raise ApiError("VALIDATION_ERROR", "template does not render", {part: why}) from None
        result: dict[str, Any] = {"body": rendered.body, "locale": locale}
        if rendered.subject is not None:
            result["subject"] = rendered.subject
        return ok(request, result)
