"""The provider registry: names from the settings become providers, or a clear error."""

from __future__ import annotations

from typing import Any, cast

import pytest

from notifyhub.model.channels import Channel
from notifyhub.providers import ProviderConfigError, providers_for
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import Settings


def build(channel: Channel, **env: str) -> list[str]:
    # Strings, as in the environment: pydantic validates them into the fields' types.
    settings = Settings(**cast(dict[str, Any], env))
    return [p.name for p in providers_for(channel, settings, Resources(settings))]


def test_the_sink_and_inapp_need_no_credentials() -> None:
    assert build(Channel.SMS, NOTIFYHUB_SINK_CHANNELS="sms") == ["sink"]
    assert build(Channel.INAPP) == ["inapp"]
    assert build(Channel.PUSH) == []


def test_an_unknown_provider_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ProviderConfigError, match=r"unknown provider 'mailgun'.*ses"):
        build(Channel.EMAIL, NOTIFYHUB_EMAIL_PROVIDERS="mailgun")


def test_a_provider_of_another_channel_is_refused() -> None:
    with pytest.raises(ProviderConfigError, match="'twilio' cannot send on the email channel"):
        build(Channel.EMAIL, NOTIFYHUB_EMAIL_PROVIDERS="twilio")
