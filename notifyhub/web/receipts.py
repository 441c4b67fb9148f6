"""Receivers for what providers report after they accepted a message (``/receipts/...``).

No API key: a provider calls these, and each request is checked the provider's way first.
- ``POST /receipts/twilio/status``: Twilio's status callbacks (``X-Twilio-Signature``,
  HMAC-SHA1 with the account's auth token over the URL Twilio called, which is
  ``NOTIFYHUB_PUBLIC_URL`` + the path, and the form fields);
- ``POST /receipts/twilio/inbound``: texts to the Twilio sender (same signature); STOP
  suppresses the number for every tenant, START lifts it (Twilio keeps its own opt-out too);
- ``POST /receipts/ses``: SES events published through SNS (the message's signature, from
  a certificate on SNS's own host, a topic of ``NOTIFYHUB_SES_SNS_TOPIC_ARNS``, at most an
  hour old); a subscription confirmation is confirmed.
A verified receipt goes on the receipts topic (``agents/receipts.py`` applies it) before
the answer, so a 2xx means it is safe in Kafka. A forged or stale request is a 403 and
changes nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import web
from faust.web import View

from notifyhub.app import app, publish_all, resources, settings, topics
from notifyhub.receipts import sns, twilio
from notifyhub.receipts.model import Receipt
from notifyhub.services.publishing import QueueUnavailable
from notifyhub.services.receipts import apply_sms_opt_out, publish_receipt
from notifyhub.web.responses import ApiError

logger = logging.getLogger(__name__)

# Fetching an SNS certificate or confirming a subscription.
SNS_CALL_TIMEOUT = aiohttp.ClientTimeout(total=10)
# An SNS message is a few KB; SES events with many recipients stay well under this.
MAX_SNS_BODY = 256 * 1024


def _external_url(request: web.Request) -> str:
    """The URL the provider called: under NOTIFYHUB_PUBLIC_URL when set (behind a proxy
    the request's own URL is not the one that was signed)."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + request.rel_url.path_qs
    return str(request.url)


def _forbidden(why: str) -> ApiError:
    return ApiError("FORBIDDEN", why)


async def _publish(receipt: Receipt) -> None:
    try:
        await publish_receipt(publish_all, topics, receipt, resources.db)
    except QueueUnavailable:
        raise ApiError("SERVICE_UNAVAILABLE", "the receipt could not be stored; send it again") from None


async def _twilio_form(request: web.Request) -> dict[str, str]:
    """The request's form fields, if Twilio signed them with our auth token."""
    token = settings.twilio_auth_token
    if token is None:
        raise ApiError("NOT_FOUND", "Twilio is not configured (TWILIO_AUTH_TOKEN)")
    form = await request.post()
    fields = {name: str(value) for name, value in form.items()}
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not twilio.signature_is_valid(
        [token.get_secret_value()], _external_url(request), fields, signature
    ):
        raise _forbidden("the X-Twilio-Signature does not match this request")
    return fields


@app.page("/receipts/twilio/status")
class TwilioStatusView(View):
    async def post(self, request: web.Request) -> web.Response:
        fields = await _twilio_form(request)
        try:
            receipt = twilio.status_receipt(fields, datetime.now(UTC))
        except ValueError as exc:
            raise ApiError("VALIDATION_ERROR", "invalid status callback", {"form": str(exc)}) from None
        if receipt is not None:
            await _publish(receipt)
        return web.Response(status=204)


@app.page("/receipts/twilio/inbound")
class TwilioInboundView(View):
    async def post(self, request: web.Request) -> web.Response:
        fields = await _twilio_form(request)
        try:
            change = twilio.opt_out_change(fields)
        except ValueError as exc:
            raise ApiError("VALIDATION_ERROR", "invalid inbound message", {"form": str(exc)}) from None
        if change is not None:
            number, opted_out = change
            await apply_sms_opt_out(await resources.db(), number, opted_out)
        # An empty TwiML answer: Twilio sends its own confirmation of STOP and START.
        return web.Response(text="<Response/>", content_type="text/xml")


def _local(url: str) -> str:
    """Where to fetch an SNS URL from: itself, or under NOTIFYHUB_SNS_CERTIFICATE_BASE_URL."""
    base = settings.sns_certificate_base_url
    if not base:
        return url
    scheme, netloc, *_ = urlsplit(base)
    _, _, path, query, fragment = urlsplit(url)
    return urlunsplit((scheme, netloc, path, query, fragment))


async def _fetch_certificate(url: str) -> bytes:
    async with aiohttp.ClientSession(timeout=SNS_CALL_TIMEOUT) as session:
        async with session.get(_local(url)) as response:
            response.raise_for_status()
            return await response.read()


_verifier: sns.SnsVerifier | None = None


def _sns_verifier() -> sns.SnsVerifier:
    global _verifier
    if _verifier is None:
        _verifier = sns.SnsVerifier(_fetch_certificate, allowed_topics=settings.ses_sns_topic_arns)
    return _verifier


async def _confirm_subscription(message: dict[str, object]) -> None:
    """Visit the SubscribeURL of a verified confirmation, if it is SNS's own https host."""
    url = str(message.get("SubscribeURL", ""))
    parts = urlsplit(url)
    if parts.scheme != "https" or not sns.DEFAULT_CERTIFICATE_HOST.fullmatch(parts.hostname or ""):
        raise _forbidden("the SubscribeURL is not on an SNS host")
    async with aiohttp.ClientSession(timeout=SNS_CALL_TIMEOUT) as session:
        async with session.get(_local(url)) as response:
            response.raise_for_status()
    logger.info("confirmed the SNS subscription of %s", message.get("TopicArn"))


@app.page("/receipts/ses")
class SesEventsView(View):
    async def post(self, request: web.Request) -> web.Response:
        if not settings.ses_sns_topic_arns:
            raise ApiError("NOT_FOUND", "SES receipts are not configured (NOTIFYHUB_SES_SNS_TOPIC_ARNS)")
        raw = await request.content.read(MAX_SNS_BODY + 1)
        if len(raw) > MAX_SNS_BODY:
            raise ApiError("VALIDATION_ERROR", "invalid SNS message", {"body": "too large"})
        try:
            message = json.loads(raw)
            if not isinstance(message, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise ApiError("VALIDATION_ERROR", "invalid SNS message", {"body": str(exc)}) from None
        try:
            await _sns_verifier().verify(message)
        except sns.InvalidSnsMessage as exc:
            raise _forbidden(f"not a genuine SNS message for us: {exc}") from None
        except aiohttp.ClientError:
            raise ApiError(
                "SERVICE_UNAVAILABLE", "the SNS signing certificate could not be fetched"
            ) from None
        kind = message["Type"]
        if kind == sns.SUBSCRIPTION_CONFIRMATION:
            await _confirm_subscription(message)
        elif kind == sns.NOTIFICATION:
            try:
                receipt = sns.ses_receipt(message)
            except sns.InvalidSnsMessage as exc:
                raise ApiError("VALIDATION_ERROR", "invalid SES event", {"Message": str(exc)}) from None
            if receipt is not None:
                await _publish(receipt)
        return web.Response(status=204)
