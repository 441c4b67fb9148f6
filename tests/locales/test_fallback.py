"""Which locale variant a notification gets, and which payload fields a template-less one
sends (pure, no services)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from notifyhub.content.rendering import locale_fallbacks, pick_locale
from notifyhub.cores.enrich import Template, Variant
from notifyhub.model.messages import NotificationRequest

NOW = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("locale", "chain"),
    [
        ("pt-BR", ["pt-br", "pt"]),
        ("zh-Hant-TW", ["zh-hant-tw", "zh-hant", "zh"]),
        ("en", ["en"]),
    ],
)
def test_a_locale_falls_back_along_its_subtags(locale: str, chain: list[str]) -> None:
    assert locale_fallbacks(locale) == chain


@pytest.mark.parametrize(
    ("variants", "locale", "picked"),
    [
        (["pt"], "pt-BR", "pt"),
        (["pt", "pt-BR"], "pt-BR", "pt-BR"),
        (["pt-BR"], "pt", None),  # a language does not take a regional variant
        (["en-GB"], "en-gb", "en-GB"),  # tags are case-insensitive; the tenant's spelling is kept
        (["de"], "fr-FR", None),
        (["de"], None, None),
        ([], "pt-BR", None),
    ],
)
def test_the_variant_picked_is_the_closest_along_the_tag_else_the_default(
    variants: list[str], locale: str | None, picked: str | None
) -> None:
    assert pick_locale(variants, locale) == picked


def test_a_template_gives_the_variants_texts_or_its_default() -> None:
    pt = Variant("Olá", "Oi {{ name }}")
    template = Template("Hello", "Hi {{ name }}", {"pt": pt})
    assert template.in_locale("pt-BR") == ("pt", pt)
    assert template.in_locale("fr") == (None, Variant("Hello", "Hi {{ name }}"))
    assert template.in_locale(None) == (None, Variant("Hello", "Hi {{ name }}"))


def request(**fields: object) -> NotificationRequest:
    return NotificationRequest.model_validate({"channel": "inapp", "recipient_id": "r", **fields})


@pytest.mark.parametrize("locale", ["en", "pt-BR", "zh-Hant-TW", "ast"])
def test_a_request_may_name_a_locale(locale: str) -> None:
    assert request(payload={"body": "b"}, locale=locale).locale == locale


@pytest.mark.parametrize("locale", ["", "PT", "pt_BR", "english", "pt-", "pt-B"])
def test_a_malformed_locale_is_refused(locale: str) -> None:
    with pytest.raises(ValidationError) as refused:
        request(payload={"body": "b"}, locale=locale)
    assert refused.value.errors()[0]["loc"] == ("locale",)


@pytest.mark.parametrize("field", ["subject", "title"])
def test_a_payload_subject_or_title_must_be_one_line(field: str) -> None:
    with pytest.raises(ValidationError, match=f"payload.{field} may not contain CR or LF"):
        request(payload={field: "a\r\nBcc: x", "body": "b"})


@pytest.mark.parametrize(
    ("payload", "problems"),
    [
        ({"body": "b"}, set()),
        ({"text": "b"}, set()),
        ({"title": "t"}, {"payload.body"}),
        ({"body": 3}, {"payload.body"}),
    ],
)
def test_without_a_template_the_payload_needs_a_body_or_a_text(
    payload: dict[str, Any], problems: set[str]
) -> None:
    assert set(request(payload=payload).unsupported_fields(NOW)) == problems
