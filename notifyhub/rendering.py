"""Rendering tenant templates (subject and body) with Jinja2, and the starter templates we ship.

Tenant templates are untrusted, so they run in Jinja2's sandbox with ``StrictUndefined``: a
missing payload variable is an error, never an empty string in a message someone receives.
The payload's keys are the template's variables (``{{ name }}``).

Only an email body that is HTML is autoescaped: SMS, push and in-app texts are shown as plain
text, where ``&lt;`` would be visible noise, and a subject is a header, never HTML.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from notifyhub.channels import Channel

# One compiled template per (autoescape, source). A worker serves a few hundred tenant
# templates at most, and each renders thousands of times, so compiling once pays; the
# bound keeps memory flat when tenants keep editing templates (each is a few KB of code).
TEMPLATE_CACHE_SIZE = 1024

# An email body counts as HTML when its source holds something shaped like a real tag:
# ``<p>``, ``</p>``, ``<br/>``, ``<a href="...">``, ``<!DOCTYPE html>`` or ``<!-- ... -->``.
# A bare ``<`` followed by a space or digit ("a < b", "<5 left") is plain text.
HTML_TAG = re.compile(
    r"<(?:/?[a-zA-Z][a-zA-Z0-9-]*(?:\s[^<>]*)?/?|!doctype\b[^<>]*|!--.*?--)>",
    re.IGNORECASE | re.DOTALL,
)

# Starter templates live in notifyhub/templates/<channel>/<name>.j2.
STARTER_TEMPLATE_SUFFIX = ".j2"
FRONT_MATTER_FENCE = "---"


class RenderError(Exception):
    """A template could not be rendered (or compiled); str(exc) says which part (subject/body) and why,
    e.g. "body: 'name' is undefined" or "subject: syntax error at line 1: unexpected '}'"."""


@dataclass(frozen=True)
class Rendered:
    """The texts a provider sends; ``subject`` is None when the template has none."""

    subject: str | None
    body: str


@dataclass(frozen=True)
class StarterTemplate:
    """A template shipped with NotifyHub that a tenant can start from."""

    name: str
    channel: Channel
    subject_template: str | None
    body_template: str
    metadata: dict[str, Any]


# The immutable sandbox also refuses methods that change lists and dicts (``append``,
# ``update``), so a template cannot alter the payload its caller keeps using.
_PLAIN = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_HTML = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)


def is_html(body_template: str) -> bool:
    """Whether a body template is HTML, judged by whether its source contains an HTML tag."""
    return HTML_TAG.search(body_template) is not None


def render(
    channel: Channel, subject_template: str | None, body_template: str, payload: Mapping[str, Any]
) -> Rendered:
    """Render a notification's subject and body with the payload as variables.

    Raises RenderError, prefixed "subject: " or "body: ", when a template does not compile,
    uses a variable the payload lacks, or tries something the sandbox forbids.
    """
    context = dict(payload)
    subject = None
    if subject_template is not None:
        subject = _render_part("subject", subject_template, context, autoescape=False)
    autoescape = channel == Channel.EMAIL and is_html(body_template)
    body = _render_part("body", body_template, context, autoescape=autoescape)
    return Rendered(subject=subject, body=body)


def check_syntax(subject_template: str | None, body_template: str) -> None:
    """Compile both templates so a bad one is refused when it is saved, not when it is sent.

    Raises RenderError whose message starts with the field at fault, "subject_template: " or
    "body_template: ", so the API can name the field in its response.
    """
    for field, source in (("subject_template", subject_template), ("body_template", body_template)):
        if source is None:
            continue
        try:
            _compile(source, autoescape=False)
        except TemplateError as exc:
            raise RenderError(f"{field}: {_describe(exc)}") from exc


def starter_templates() -> list[StarterTemplate]:
    """The starter templates shipped in notifyhub/templates, sorted by (channel, name).

    Raises ValueError naming the file when one is malformed; that is a packaging bug.
    """
    root = resources.files("notifyhub").joinpath("templates")
    found = [
        _parse_starter(channel_dir.name, entry)
        for channel_dir in root.iterdir()
        if channel_dir.is_dir()
        for entry in channel_dir.iterdir()
        if entry.is_file() and entry.name.endswith(STARTER_TEMPLATE_SUFFIX)
    ]
    return sorted(found, key=lambda template: (template.channel, template.name))


@functools.lru_cache(maxsize=TEMPLATE_CACHE_SIZE)
def _compile(source: str, autoescape: bool) -> Template:
    environment = _HTML if autoescape else _PLAIN
    return environment.from_string(source)


def _render_part(part: str, source: str, context: dict[str, Any], autoescape: bool) -> str:
    try:
        return str(_compile(source, autoescape).render(context))
    except TemplateError as exc:
        raise RenderError(f"{part}: {_describe(exc)}") from exc
    except Exception as exc:
        # A tenant's template can fail in plain Python too ({{ 1 / 0 }}, a filter given the
        # wrong type, a range over the sandbox's limit); that is the tenant's error to fix,
        # not a crash of the worker rendering it.
        raise RenderError(f"{part}: {type(exc).__name__}: {exc}") from exc


def _describe(exc: TemplateError) -> str:
    if isinstance(exc, TemplateSyntaxError):
        return f"syntax error at line {exc.lineno}: {exc.message}"
    if isinstance(exc, SecurityError):
        return f"not allowed in a template: {exc.message}"
    return str(exc.message)


def _parse_starter(channel_name: str, entry: Traversable) -> StarterTemplate:
    where = f"templates/{channel_name}/{entry.name}"
    text = entry.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != FRONT_MATTER_FENCE:
        raise ValueError(f"{where}: must start with a {FRONT_MATTER_FENCE!r} front-matter line")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == FRONT_MATTER_FENCE)
    except StopIteration:
        raise ValueError(
            f"{where}: front matter is not closed by a {FRONT_MATTER_FENCE!r} line"
        ) from None

    header: dict[str, str] = {}
    for number, line in enumerate(lines[1:end], start=2):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            raise ValueError(f"{where}: line {number}: expected 'key: value', got {line.strip()!r}")
        header[key.strip()] = value.strip()

    name = header.pop("name", None)
    channel = header.pop("channel", None)
    subject = header.pop("subject", None)
    # The file's place is what the API lists it under, so the header must agree with it.
    expected_name = entry.name.removesuffix(STARTER_TEMPLATE_SUFFIX)
    if name != expected_name or channel != channel_name:
        raise ValueError(
            f"{where}: header says name={name!r}, channel={channel!r}; "
            f"the file's path says name={expected_name!r}, channel={channel_name!r}"
        )
    try:
        parsed_channel = Channel(channel)
    except ValueError:
        raise ValueError(f"{where}: unknown channel {channel!r}") from None
    return StarterTemplate(
        name=name,
        channel=parsed_channel,
        subject_template=subject,
        body_template="".join(lines[end + 1 :]),
        metadata=dict(header),
    )
