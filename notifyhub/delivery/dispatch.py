"""One notification's delivery: through the channel's providers in failover order, or, for
push, to each of the recipient's device tokens.

For each provider in turn: skip it while its circuit breaker is open, wait for its rate
limit, call it with a timeout. Delivered: done. A permanent refusal: done (failing over
would only be refused again: the message, not the provider, is the problem). A temporary
failure: the next provider tries. The ``Outcome`` says what happened; the send agent
turns it into status events, a retry or a dead letter.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

from opentelemetry.trace import Span, SpanKind

from notifyhub.delivery.breakers import CircuitBreaker
from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.model.outcomes import Outcome, Result
from notifyhub.observability import tracing
from notifyhub.observability.metrics import PROVIDER_SEND_SECONDS, PROVIDER_SENDS
from notifyhub.providers.base import BatchProvider, Provider, ProviderError, SendResult

# The provider-send metric's outcome label for each result of a call.
_METRIC_OUTCOMES = {
    Result.DELIVERED: "delivered",
    Result.TEMPORARY: "temporary_failure",
    Result.FAILED: "permanent_failure",
    Result.UNAVAILABLE: "temporary_failure",
}


class _BatchingProvider(Provider, BatchProvider, Protocol):
    """A provider that also takes batches: what ``isinstance(provider, BatchProvider)`` finds."""


class RateLimits(Protocol):
    """Per-provider rate limits (``ProviderRateLimiter`` in the worker)."""

    def limits(self, provider: str) -> bool: ...

    async def acquire(self, provider: str) -> None: ...


class DeviceTokens(Protocol):
    """Where push fan-out finds a recipient's tokens, and reports dead ones."""

    async def active(self, tenant_id: uuid.UUID, recipient_id: str) -> list[str]: ...

    async def deactivate(self, notification: Notification, token: str, reason: str) -> None: ...


def _classified(provider: Provider, error: Exception) -> ProviderError | None:
    if isinstance(error, TimeoutError):
        return ProviderError(f"no answer within the timeout ({error!r})", temporary=True)
    return provider.classify(error)


def _refused(provider: Provider, error: ProviderError) -> Outcome:
    """The outcome of a provider's refusal: temporary (another provider, or a later attempt,
    may do), or for good."""
    if error.temporary:
        return Outcome(Result.TEMPORARY, provider=provider.name, reason=f"{provider.name}: {error}")
    code = f" ({error.code})" if error.code else ""
    return Outcome(
        Result.FAILED,
        provider=provider.name,
        reason=f"{provider.name}{code}: {error}",
        address_invalid=error.address_invalid,
        opted_out=error.opted_out,
    )


class Dispatcher:
    def __init__(
        self,
        channel: Channel,
        providers: Sequence[Provider],
        breakers: dict[str, CircuitBreaker],
        rate_limiter: RateLimits,
        timeout_seconds: float,
        device_tokens: DeviceTokens,
    ) -> None:
        self.channel = channel
        self.providers = list(providers)
        self._breakers = breakers
        self._rate_limiter = rate_limiter
        self._timeout = timeout_seconds
        self._device_tokens = device_tokens

    async def deliver(self, notification: Notification) -> Outcome:
        if self.channel is Channel.PUSH:
            return await self._fan_out(notification)
        return await self._through_providers(notification)

    def _batch_provider(self) -> _BatchingProvider | None:
        """The provider a batch may go to in one call: the first in failover order, when it
        takes batches and has no rate limit (each send would wait for its own token)."""
        if self.channel is Channel.PUSH or not self.providers:
            return None
        provider = self.providers[0]
        if not isinstance(provider, BatchProvider) or self._rate_limiter.limits(provider.name):
            return None
        return provider

    async def deliver_many(
        self, notifications: Sequence[Notification], parents: Sequence[Span | None] = ()
    ) -> list[Outcome] | None:
        """A batch through its first provider in one call (``_batch_provider``), in order;
        each one it failed temporarily goes on through the other providers. ``None``: the
        batch must go one by one (``deliver``), as it does when the breaker is open.

        ``parents``: each notification's stage span, the parent of its provider span."""
        if not notifications:
            return []
        provider = self._batch_provider()
        if provider is None:
            return None
        breaker = self._breakers[provider.name]
        if not breaker.allow():
            return None
        answered = False
        started = time.perf_counter()
        spans = self._spans_under(provider, parents)
        try:
            try:
                async with asyncio.timeout(self._timeout):
                    answers = await provider.send_many(notifications)
            except Exception as exc:
                if _classified(provider, exc) is None:
                    raise
                answers = [exc] * len(notifications)
            answered = True
        finally:
            if not answered:
                breaker.release_probe()
            for span in spans:
                span.end()
        outcomes = [self._outcome_of(provider, answer) for answer in answers]
        if all(o.result is Result.TEMPORARY for o in outcomes):
            breaker.record_failure()
        else:
            breaker.record_success()
        self._observe_many(provider, outcomes, time.perf_counter() - started)
        if len(self.providers) > 1:
            for index, (notification, outcome) in enumerate(zip(notifications, outcomes, strict=True)):
                if outcome.result is Result.TEMPORARY:
                    outcomes[index] = await self._through_providers(
                        notification, after=[outcome.reason or provider.name]
                    )
        return outcomes

    def _outcome_of(self, provider: Provider, answer: SendResult | Exception) -> Outcome:
        if not isinstance(answer, Exception):
            return Outcome(
                Result.DELIVERED, provider=provider.name, provider_message_id=answer.provider_message_id
            )
        error = _classified(provider, answer)
        if error is None:
            # A bug, not the provider's answer: this one fails with the reason.
            return Outcome(
                Result.FAILED, provider=provider.name, reason=f"internal error in send: {answer!r}"
            )
        return _refused(provider, error)

    def _observe_many(self, provider: Provider, outcomes: Sequence[Outcome], seconds: float) -> None:
        kinds = Counter(_METRIC_OUTCOMES[o.result] for o in outcomes)
        for kind, count in kinds.items():
            labels = {"channel": self.channel.value, "provider": provider.name, "outcome": kind}
            PROVIDER_SENDS.labels(**labels).inc(count)
            # One call for the batch: its duration counts once per notification it carried.
            histogram = PROVIDER_SEND_SECONDS.labels(**labels)
            for _ in range(count):
                histogram.observe(seconds)

    async def _through_providers(self, notification: Notification, after: Sequence[str] = ()) -> Outcome:
        """Through the providers in failover order; ``after``: the first already failed
        temporarily, for these reasons."""
        if not self.providers:
            return Outcome(
                Result.FAILED, reason=f"no provider is configured for the {self.channel} channel"
            )
        failures: list[str] = list(after)
        attempted: str | None = self.providers[0].name if after else None
        for provider in self.providers[1:] if after else self.providers:
            breaker = self._breakers[provider.name]
            if not breaker.allow():
                failures.append(f"{provider.name}: circuit breaker open")
                continue
            attempted = provider.name
            outcome = await self._call(provider, breaker, notification)
            if outcome.result is not Result.TEMPORARY:
                return outcome
            failures.append(outcome.reason or provider.name)
        if attempted is None:
            return Outcome(
                Result.UNAVAILABLE,
                reason="; ".join(failures),
                retry_after=min(self._breakers[p.name].seconds_until_probe() for p in self.providers),
            )
        return Outcome(Result.TEMPORARY, provider=attempted, reason="; ".join(failures))

    async def _call(
        self, provider: Provider, breaker: CircuitBreaker, notification: Notification
    ) -> Outcome:
        """One provider call; the breaker hears how it went whatever happens."""
        answered = False
        try:
            await self._rate_limiter.acquire(provider.name)
            started = time.perf_counter()
            try:
                # The provider call's own span: a failure shows as its error status and event.
                with self._span(provider):
                    async with asyncio.timeout(self._timeout):
                        result = await provider.send(notification)
            except Exception as exc:
                error = _classified(provider, exc)
                if error is None:
                    raise
                answered = True
                kind = "temporary_failure" if error.temporary else "permanent_failure"
                self._observe(provider, kind, started)
                if error.temporary:
                    breaker.record_failure()
                else:
                    # A refusal is an answer: the provider is up.
                    breaker.record_success()
                return _refused(provider, error)
            answered = True
            self._observe(provider, "delivered", started)
            breaker.record_success()
            return Outcome(
                Result.DELIVERED, provider=provider.name, provider_message_id=result.provider_message_id
            )
        finally:
            if not answered:
                # Cancelled or a bug: say nothing about the provider's health, but free
                # the half-open probe slot so a later call can probe.
                breaker.release_probe()

    def _spans_under(self, provider: Provider, parents: Sequence[Span | None]) -> list[Span]:
        """One provider span per notification of a batch call, under its stage span."""
        if not tracing.enabled():
            return []
        return [
            tracing.stage_span(
                f"{provider.name} send",
                tracing.context_with(parent),
                kind=SpanKind.CLIENT,
                **{"notifyhub.provider": provider.name, "notifyhub.channel": self.channel.value},
            )
            for parent in parents
            if parent is not None
        ]

    def _span(self, provider: Provider) -> AbstractContextManager[object]:
        if not tracing.enabled():
            return nullcontext()
        return tracing.tracer.start_as_current_span(
            f"{provider.name} send",
            kind=SpanKind.CLIENT,
            attributes={"notifyhub.provider": provider.name, "notifyhub.channel": self.channel.value},
        )

    def _observe(self, provider: Provider, outcome: str, started: float) -> None:
        labels = {"channel": self.channel.value, "provider": provider.name, "outcome": outcome}
        PROVIDER_SENDS.labels(**labels).inc()
        PROVIDER_SEND_SECONDS.labels(**labels).observe(time.perf_counter() - started)

    async def _fan_out(self, notification: Notification) -> Outcome:
        """Push: one send per device token (the request's, or each active registered one).

        Delivered when any device got it; a token the provider calls dead is deactivated.
        When none got it and some failed temporarily, the whole notification is retried
        (the tokens deactivated meanwhile are left out next time).
        """
        if notification.recipient_address:
            tokens = [notification.recipient_address]
        else:
            tokens = await self._device_tokens.active(notification.tenant_id, notification.recipient_id)
        if not tokens:
            return Outcome(Result.FAILED, reason="the recipient has no active device tokens")
        outcomes = await asyncio.gather(
            *(
                self._through_providers(notification.model_copy(update={"recipient_address": token}))
                for token in tokens
            )
        )
        for token, outcome in zip(tokens, outcomes, strict=True):
            if outcome.address_invalid:
                await self._device_tokens.deactivate(notification, token, outcome.reason or "")
        delivered = [o for o in outcomes if o.result is Result.DELIVERED]
        failures = [o.reason for o in outcomes if o.result is not Result.DELIVERED and o.reason]
        summary = f"{len(delivered)} of {len(tokens)} devices" + (
            f"; {'; '.join(failures)}" if failures else ""
        )
        if delivered:
            return Outcome(
                Result.DELIVERED,
                provider=delivered[0].provider,
                provider_message_id=",".join(o.provider_message_id or "" for o in delivered),
                reason=summary if failures else None,
            )
        waiting = [o for o in outcomes if o.result in (Result.TEMPORARY, Result.UNAVAILABLE)]
        if not waiting:
            return Outcome(Result.FAILED, provider=outcomes[0].provider, reason=summary)
        if all(o.result is Result.UNAVAILABLE for o in waiting):
            return Outcome(
                Result.UNAVAILABLE, reason=summary, retry_after=min(o.retry_after for o in waiting)
            )
        return Outcome(Result.TEMPORARY, reason=summary)
