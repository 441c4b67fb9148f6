"""Completing a notification request from what the tenant has stored, for HTTP and Kafka alike:
the template named by id or name, and from the recipient's profile an address and the locale
the template is rendered in (when the request names none)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

import asyncpg

from notifyhub.db import recipients, templates
from notifyhub.model.messages import ADDRESSED_CHANNELS, NotificationRequest

# What ``resolve`` completes, and returns completed: a request or an intake message.
RequestT = TypeVar("RequestT", bound=NotificationRequest)


class Unresolvable(Exception):
    """The request names something the tenant does not have; ``problems`` maps field → why."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {why}" for field, why in problems.items()))
        self.problems = problems


async def resolve(pool: asyncpg.Pool, tenant_id: uuid.UUID, request: RequestT) -> RequestT:
    """The request with ``template_id`` as the template's id, and ``recipient_address`` and
    ``locale`` filled in from the recipient's profile where the request has none."""
    if not request.needs_lookup:
        return request
    changes: dict[str, Any] = {}
    problems: dict[str, str] = {}
    if request.template_id is not None:
        # The profile's locale comes with the template, in the same statement.
        template = await templates.find(
            pool,
            tenant_id,
            request.channel,
            request.template_id,
            recipient_id=request.recipient_id if request.locale is None else None,
        )
        if template is None:
            problems["template_id"] = f"no active {request.channel} template has this id or name"
        else:
            changes["template_id"] = str(template["id"])
            if request.locale is None and template["recipient_locale"]:
                changes["locale"] = template["recipient_locale"]
    if request.channel in ADDRESSED_CHANNELS and not request.recipient_address:
        address = await recipients.address_for(pool, tenant_id, request.recipient_id, request.channel)
        if address:
            changes["recipient_address"] = address
        else:
            problems["recipient_address"] = (
                f"required for the {request.channel} channel: send it, or set it in the "
                "recipient's profile (PUT /api/v1/users/{user_id})"
            )
    await _resolve_workflow_templates(pool, tenant_id, request, changes, problems)
    if problems:
        raise Unresolvable(problems)
    return request.model_copy(update=changes)


async def _resolve_workflow_templates(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    request: RequestT,
    changes: dict[str, Any],
    problems: dict[str, str],
) -> None:
    """The digest's template and each escalation step's, by id or name, as their ids."""
    digest = request.digest
    if digest is not None and digest.template_id is not None:
        found = await templates.find(pool, tenant_id, request.channel, digest.template_id)
        if found is None:
            problems["digest.template_id"] = f"no active {request.channel} template has this id or name"
        else:
            changes["digest"] = digest.model_copy(update={"template_id": str(found["id"])})
    steps = list(request.escalate or ())
    for index, step in enumerate(steps):
        if step.template_id is None:
            continue
        found = await templates.find(pool, tenant_id, step.channel, step.template_id)
        if found is None:
            problems[f"escalate.{index}.template_id"] = (
                f"no active {step.channel} template has this id or name"
            )
        else:
            steps[index] = step.model_copy(update={"template_id": str(found["id"])})
    if request.escalate:
        changes["escalate"] = steps
