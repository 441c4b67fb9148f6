"""The settings object (pure logic)."""

from __future__ import annotations

import pytest

from notifyhub.model.channels import Channel
from notifyhub.runtime.settings import MIN_SECRET_LENGTH, InsecureSecret, Settings


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("email, sms", {Channel.EMAIL, Channel.SMS}),
        ("all", set(Channel)),
        ("", set()),
    ],
)
def test_sink_channels_come_from_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch, given: str, expected: set[Channel]
) -> None:
    monkeypatch.setenv("NOTIFYHUB_SINK_CHANNELS", given)
    assert Settings().sink_channels == expected


def test_an_unknown_sink_channel_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFYHUB_SINK_CHANNELS", "email,fax")
    with pytest.raises(ValueError, match="fax"):
        Settings()


def test_topics_are_named_under_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFYHUB_TOPIC_PREFIX", "acme")
    assert Settings().topic("send.email") == "acme.send.email"


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    # Strings on purpose, as the environment gives them: pydantic makes them SecretStr.
    settings = Settings(
        database_url="postgresql://u:hunter2@h/db",  # type: ignore[arg-type]
        NOTIFYHUB_ADMIN_TOKEN="s3cret",  # type: ignore[arg-type]
    )
    assert "hunter2" not in repr(settings)
    assert "s3cret" not in repr(settings)


def test_send_concurrency_overrides_only_the_channels_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFYHUB_SEND_CONCURRENCY", "sms=7")
    assert Settings().send_concurrency == {
        Channel.EMAIL: 5,
        Channel.PUSH: 3,
        Channel.SMS: 7,
        Channel.INAPP: 5,
    }


@pytest.mark.parametrize("given", ["sms=0", "fax=2", "sms=many"])
def test_bad_send_concurrency_is_an_error(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("NOTIFYHUB_SEND_CONCURRENCY", given)
    with pytest.raises(ValueError):
        Settings()


def test_providers_are_a_failover_list_per_channel_and_the_sink_replaces_them_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFYHUB_EMAIL_PROVIDERS", " SES, smtp ")
    monkeypatch.setenv("NOTIFYHUB_SINK_CHANNELS", "sms")
    settings = Settings()
    assert settings.providers_for(Channel.EMAIL) == ("ses", "smtp")
    assert settings.providers_for(Channel.SMS) == ("sink",)
    assert settings.providers_for(Channel.PUSH) == ()
    assert settings.providers_for(Channel.INAPP) == ("inapp",)


def test_naming_providers_for_a_sunk_channel_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFYHUB_SINK_CHANNELS", "all")
    monkeypatch.setenv("NOTIFYHUB_SMS_PROVIDERS", "twilio")
    with pytest.raises(ValueError, match="NOTIFYHUB_SMS_PROVIDERS"):
        Settings()


def test_provider_rate_limits_are_per_second_per_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFYHUB_PROVIDER_RATE_LIMITS", "ses=14, twilio=0.5")
    assert Settings().provider_rate_limits == {"ses": 14.0, "twilio": 0.5}
    monkeypatch.setenv("NOTIFYHUB_PROVIDER_RATE_LIMITS", "ses=0")
    with pytest.raises(ValueError, match="above 0"):
        Settings()


SECRET_VARIABLES = (
    "NOTIFYHUB_ADMIN_TOKEN",
    "NOTIFYHUB_ADMIN_TOKEN_PREVIOUS",
    "NOTIFYHUB_WS_TOKEN_SECRET",
    "NOTIFYHUB_WS_TOKEN_PREVIOUS_SECRET",
    "NOTIFYHUB_WEBHOOK_SECRET_KEY",
    "NOTIFYHUB_DEVELOPMENT",
)
GOOD_SECRET = "0123456789abcdef" * 2


@pytest.fixture
def good_secrets(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The three required secrets set to acceptable values, nothing else secret set."""
    for name in SECRET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in ("NOTIFYHUB_ADMIN_TOKEN", "NOTIFYHUB_WS_TOKEN_SECRET", "NOTIFYHUB_WEBHOOK_SECRET_KEY"):
        monkeypatch.setenv(name, GOOD_SECRET)
    return monkeypatch


def test_secrets_of_32_characters_or_more_are_accepted(good_secrets: pytest.MonkeyPatch) -> None:
    Settings().refuse_insecure_secrets()


@pytest.mark.parametrize(
    "name", ["NOTIFYHUB_ADMIN_TOKEN", "NOTIFYHUB_WS_TOKEN_SECRET", "NOTIFYHUB_WEBHOOK_SECRET_KEY"]
)
def test_a_shipped_default_secret_is_refused_by_name(
    good_secrets: pytest.MonkeyPatch, name: str
) -> None:
    good_secrets.delenv(name)
    with pytest.raises(InsecureSecret) as refused:
        Settings().refuse_insecure_secrets()
    message = str(refused.value)
    assert message.startswith(f"{name} is the shipped development default")
    assert "\n" not in message


@pytest.mark.parametrize(
    "name",
    [
        "NOTIFYHUB_ADMIN_TOKEN",
        "NOTIFYHUB_ADMIN_TOKEN_PREVIOUS",
        "NOTIFYHUB_WS_TOKEN_SECRET",
        "NOTIFYHUB_WS_TOKEN_PREVIOUS_SECRET",
        "NOTIFYHUB_WEBHOOK_SECRET_KEY",
    ],
)
def test_a_short_secret_is_refused_by_name(good_secrets: pytest.MonkeyPatch, name: str) -> None:
    good_secrets.setenv(name, "x" * (MIN_SECRET_LENGTH - 1))
    with pytest.raises(InsecureSecret, match=f"^{name} is shorter than {MIN_SECRET_LENGTH}"):
        Settings().refuse_insecure_secrets()


def test_the_webhook_default_is_refused_although_it_is_32_characters_long(
    good_secrets: pytest.MonkeyPatch,
) -> None:
    default = Settings.model_fields["webhook_secret_key"].default.get_secret_value()
    assert len(default) >= MIN_SECRET_LENGTH
    good_secrets.setenv("NOTIFYHUB_WEBHOOK_SECRET_KEY", default)
    with pytest.raises(InsecureSecret, match=r"^NOTIFYHUB_WEBHOOK_SECRET_KEY is the shipped"):
        Settings().refuse_insecure_secrets()


def test_development_mode_allows_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InsecureSecret):
        Settings().refuse_insecure_secrets()
    monkeypatch.setenv("NOTIFYHUB_DEVELOPMENT", "true")
    Settings().refuse_insecure_secrets()


def test_inbox_tokens_are_checked_against_the_current_secret_then_the_previous(
    good_secrets: pytest.MonkeyPatch,
) -> None:
    assert Settings().ws_token_secrets() == (GOOD_SECRET,)
    good_secrets.setenv("NOTIFYHUB_WS_TOKEN_PREVIOUS_SECRET", "p" * MIN_SECRET_LENGTH)
    assert Settings().ws_token_secrets() == (GOOD_SECRET, "p" * MIN_SECRET_LENGTH)
