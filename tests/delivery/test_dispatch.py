"""Failover, breakers and push fan-out decisions, with scripted providers (pure logic:
the providers themselves are tested against their protocol servers in tests/providers)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import pytest

from notifyhub.delivery.breakers import BreakerState, CircuitBreaker
from notifyhub.delivery.dispatch import Dispatcher
from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.model.outcomes import Result
from notifyhub.providers.base import ProviderError, SendResult


class ScriptError(Exception):
    """What a scripted provider raises; its classify maps it like a real provider would."""

    def __init__(self, temporary: bool, address_invalid: bool = False, opted_out: bool = False) -> None:
        super().__init__("scripted failure")
        self.temporary = temporary
        self.address_invalid = address_invalid
        self.opted_out = opted_out


@dataclass
class ScriptedProvider:
    name: str
    channel: Channel = Channel.EMAIL
    # Per call, in order: "ok", "temporary", "permanent", "dead-address", "opted-out", "hang",
    # "bug".
    script: list[str] = field(default_factory=list)
    # Per address (push): the answer for that token, whatever the script says.
    per_address: dict[str, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def send(self, notification: Notification) -> SendResult:
        address = notification.recipient_address or ""
        self.calls.append(address)
        answer = self.per_address.get(address) or (self.script.pop(0) if self.script else "ok")
        if answer == "hang":
            await asyncio.sleep(10)
        if answer == "bug":
            raise KeyError("a bug")
        if answer != "ok":
            raise ScriptError(
                temporary=answer == "temporary",
                address_invalid=answer == "dead-address",
                opted_out=answer == "opted-out",
            )
        return SendResult(f"{self.name}-{len(self.calls)}")

    def classify(self, error: Exception) -> ProviderError | None:
        if isinstance(error, ScriptError):
            return ProviderError(
                "scripted",
                temporary=error.temporary,
                code="X1",
                address_invalid=error.address_invalid,
                opted_out=error.opted_out,
            )
        return None

    async def close(self) -> None:
        return None


class NoRateLimits:
    def limits(self, provider: str) -> bool:
        return False

    async def acquire(self, provider: str) -> None:
        return None


@dataclass
class FakeDeviceTokens:
    tokens: list[str]
    deactivated: list[str] = field(default_factory=list)

    async def active(self, tenant_id: uuid.UUID, recipient_id: str) -> list[str]:
        return [t for t in self.tokens if t not in self.deactivated]

    async def deactivate(self, notification: Notification, token: str, reason: str) -> None:
        self.deactivated.append(token)


def notification(
    channel: Channel = Channel.EMAIL, address: str | None = "a@example.com"
) -> Notification:
    return Notification(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        channel=channel,
        recipient_id="user-1",
        recipient_address=address,
        body="hello",
    )


def dispatcher(
    *providers: ScriptedProvider,
    threshold: int = 2,
    timeout: float = 5.0,
    tokens: FakeDeviceTokens | None = None,
    channel: Channel = Channel.EMAIL,
) -> tuple[Dispatcher, dict[str, CircuitBreaker]]:
    breakers = {
        p.name: CircuitBreaker(p.name, failure_threshold=threshold, reset_seconds=30) for p in providers
    }
    return (
        Dispatcher(
            channel,
            providers,
            breakers,
            NoRateLimits(),
            timeout,
            tokens or FakeDeviceTokens([]),
        ),
        breakers,
    )


async def test_a_temporary_failure_fails_over_to_the_next_provider() -> None:
    ses, smtp = ScriptedProvider("ses", script=["temporary"]), ScriptedProvider("smtp")
    d, _ = dispatcher(ses, smtp)
    outcome = await d.deliver(notification())
    assert outcome.result is Result.DELIVERED
    assert outcome.provider == "smtp"
    assert len(ses.calls) == len(smtp.calls) == 1


async def test_a_permanent_refusal_does_not_fail_over() -> None:
    ses, smtp = ScriptedProvider("ses", script=["permanent"]), ScriptedProvider("smtp")
    d, _ = dispatcher(ses, smtp)
    outcome = await d.deliver(notification())
    assert outcome.result is Result.FAILED
    assert outcome.reason and "ses (X1)" in outcome.reason
    assert smtp.calls == []
    assert not outcome.opted_out


async def test_a_refusal_because_the_recipient_opted_out_says_so_in_its_outcome() -> None:
    twilio = ScriptedProvider("twilio", channel=Channel.SMS, script=["opted-out"])
    d, _ = dispatcher(twilio, channel=Channel.SMS)
    outcome = await d.deliver(notification(Channel.SMS, "+15005550004"))
    assert (outcome.result, outcome.opted_out) == (Result.FAILED, True)


async def test_every_provider_failing_temporarily_is_a_temporary_outcome_naming_each() -> None:
    d, _ = dispatcher(
        ScriptedProvider("ses", script=["temporary"]), ScriptedProvider("smtp", script=["temporary"])
    )
    outcome = await d.deliver(notification())
    assert outcome.result is Result.TEMPORARY
    assert outcome.reason and "ses:" in outcome.reason and "smtp:" in outcome.reason


async def test_an_open_breaker_skips_its_provider_and_all_open_means_unavailable() -> None:
    ses = ScriptedProvider("ses", script=["temporary", "temporary"])
    smtp = ScriptedProvider("smtp", script=["temporary", "temporary"])
    d, breakers = dispatcher(ses, smtp, threshold=2)
    for _ in range(2):
        assert (await d.deliver(notification())).result is Result.TEMPORARY
    assert breakers["ses"].state is BreakerState.OPEN
    assert breakers["smtp"].state is BreakerState.OPEN
    outcome = await d.deliver(notification())
    assert outcome.result is Result.UNAVAILABLE
    assert 29 < outcome.retry_after <= 30
    assert len(ses.calls) == len(smtp.calls) == 2, "no call while the breakers are open"


async def test_a_call_past_the_timeout_is_a_temporary_failure() -> None:
    d, _ = dispatcher(ScriptedProvider("ses", script=["hang"]), timeout=0.05)
    outcome = await d.deliver(notification())
    assert outcome.result is Result.TEMPORARY
    assert outcome.reason and "timeout" in outcome.reason


async def test_an_error_the_provider_does_not_recognise_is_raised_as_a_bug() -> None:
    d, breakers = dispatcher(ScriptedProvider("ses", script=["bug"]))
    with pytest.raises(KeyError):
        await d.deliver(notification())
    assert breakers["ses"].state is BreakerState.CLOSED


async def test_no_provider_configured_fails_with_the_reason() -> None:
    d = Dispatcher(Channel.SMS, [], {}, NoRateLimits(), 5.0, FakeDeviceTokens([]))
    outcome = await d.deliver(notification(Channel.SMS))
    assert outcome.result is Result.FAILED
    assert outcome.reason == "no provider is configured for the sms channel"


async def test_push_fans_out_to_every_active_token_and_deactivates_dead_ones() -> None:
    fcm = ScriptedProvider("fcm", Channel.PUSH, per_address={"dead": "dead-address"})
    tokens = FakeDeviceTokens(["phone", "dead", "tablet"])
    d, _ = dispatcher(fcm, tokens=tokens, channel=Channel.PUSH)
    outcome = await d.deliver(notification(Channel.PUSH, address=None))
    assert outcome.result is Result.DELIVERED
    assert sorted(fcm.calls) == ["dead", "phone", "tablet"]
    assert tokens.deactivated == ["dead"]
    assert outcome.provider_message_id and outcome.provider_message_id.count(",") == 1
    assert outcome.reason and outcome.reason.startswith("2 of 3 devices")


async def test_push_with_an_address_sends_to_that_token_only() -> None:
    fcm = ScriptedProvider("fcm", Channel.PUSH)
    d, _ = dispatcher(fcm, tokens=FakeDeviceTokens(["phone", "tablet"]), channel=Channel.PUSH)
    assert (await d.deliver(notification(Channel.PUSH, address="given"))).result is Result.DELIVERED
    assert fcm.calls == ["given"]


async def test_push_without_tokens_fails_and_all_temporary_retries() -> None:
    fcm = ScriptedProvider("fcm", Channel.PUSH, per_address={"a": "temporary", "b": "dead-address"})
    d, _ = dispatcher(fcm, tokens=FakeDeviceTokens([]), channel=Channel.PUSH, threshold=10)
    assert (await d.deliver(notification(Channel.PUSH, address=None))).result is Result.FAILED
    tokens = FakeDeviceTokens(["a", "b"])
    d, _ = dispatcher(fcm, tokens=tokens, channel=Channel.PUSH, threshold=10)
    outcome = await d.deliver(notification(Channel.PUSH, address=None))
    assert outcome.result is Result.TEMPORARY
    assert tokens.deactivated == ["b"]
