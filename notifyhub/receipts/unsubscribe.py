"""One-click unsubscribe links (RFC 8058) for e-mail: signed, expiring, one per recipient,
channel and category.

Every e-mail carries ``List-Unsubscribe: <{NOTIFYHUB_PUBLIC_URL}/unsubscribe/{token}>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``, so a mailbox provider's
"unsubscribe" button POSTs the link and the recipient is out without logging in; a GET
(a person following the link, or a mail scanner fetching it) only shows a page that asks.
The token is an HS256 JWT naming tenant, recipient, channel and category (none: the whole
channel), valid ``NOTIFYHUB_UNSUBSCRIBE_LINK_DAYS``. Its key is derived from the inbox
token secret (``NOTIFYHUB_WS_TOKEN_SECRET``, and the previous one while rotating) for this
purpose only, so no secret is added and a token of one kind is never one of the other.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

import jwt

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.runtime.settings import Settings

ALGORITHM = "HS256"
PURPOSE = "unsubscribe"
REQUIRED_CLAIMS = ["purpose", "tenant_id", "recipient_id", "channel", "exp"]
LINK_PATH = "/unsubscribe/"
_KEY_LABEL = b"notifyhub unsubscribe links v1"


class InvalidLink(Exception):
    """The link cannot unsubscribe anyone; ``expired`` says whether it once could."""

    def __init__(self, why: str, *, expired: bool = False) -> None:
        super().__init__(why)
        self.expired = expired


@dataclass(frozen=True)
class Unsubscribe:
    tenant_id: uuid.UUID
    recipient_id: str
    channel: Channel
    category: str | None


def _keys(settings: Settings) -> list[str]:
    """The signing keys, the current one first: each inbox token secret, derived for links."""
    return [
        hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).hexdigest()
        for secret in settings.ws_token_secrets()
    ]


def issue(settings: Settings, wanted: Unsubscribe, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    claims = {
        "purpose": PURPOSE,
        "tenant_id": str(wanted.tenant_id),
        "recipient_id": wanted.recipient_id,
        "channel": wanted.channel.value,
        "category": wanted.category,
        "iat": issued,
        "exp": issued + settings.unsubscribe_link_days * 86400,
    }
    return jwt.encode(claims, _keys(settings)[0], algorithm=ALGORITHM)


def verify(settings: Settings, token: str) -> Unsubscribe:
    """What a link's token unsubscribes, or InvalidLink (forged, altered, expired)."""
    for key in _keys(settings):
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": REQUIRED_CLAIMS})
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise InvalidLink("this unsubscribe link has expired", expired=True) from None
        except jwt.InvalidTokenError:
            raise InvalidLink("this is not an unsubscribe link") from None
        if claims["purpose"] != PURPOSE:
            raise InvalidLink("this is not an unsubscribe link")
        try:
            return Unsubscribe(
                uuid.UUID(str(claims["tenant_id"])),
                str(claims["recipient_id"]),
                Channel(claims["channel"]),
                str(claims["category"]) if claims.get("category") else None,
            )
        except ValueError:
            raise InvalidLink("this is not an unsubscribe link") from None
    raise InvalidLink("this is not an unsubscribe link")


def link(settings: Settings, notification: Notification, now: float | None = None) -> str | None:
    """The notification's unsubscribe link (None without NOTIFYHUB_PUBLIC_URL)."""
    if not settings.public_url:
        return None
    wanted = Unsubscribe(
        notification.tenant_id, notification.recipient_id, notification.channel, notification.category
    )
    return settings.public_url.rstrip("/") + LINK_PATH + issue(settings, wanted, now)


def email_headers(settings: Settings, notification: Notification) -> dict[str, str]:
    """The RFC 8058 headers for the notification's e-mail (none without a public URL)."""
    url = link(settings, notification)
    if url is None:
        return {}
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
