"""The settings object (pure logic)."""

from __future__ import annotations

import pytest

from notifyhub.channels import Channel
from notifyhub.settings import Settings


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
    settings = Settings(database_url="postgresql://u:hunter2@h/db", NOTIFYHUB_ADMIN_TOKEN="s3cret")
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
