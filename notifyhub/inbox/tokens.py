"""Short-lived tokens for the inbox WebSocket: HS256 JWTs carrying tenant and recipient.

A tenant's backend asks for one (``POST /api/v1/ws-token``, with its API key) and hands
it to the recipient's browser, which never sees the API key. Verification accepts HS256
only, so a token with ``alg: none`` or any other algorithm is refused, as is one that is
expired, wrongly signed, or missing a claim.

Rotation: tokens are signed with the current secret and verified against it and the
previous one (``NOTIFYHUB_WS_TOKEN_PREVIOUS_SECRET``), so the tokens handed out before a
rotation keep their inbox open for the rest of their lifetime.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["tenant_id", "recipient_id", "iat", "exp"]


class InvalidToken(Exception):
    """The token cannot open an inbox; the message says why (never the secret)."""


@dataclass(frozen=True)
class InboxGrant:
    tenant_id: uuid.UUID
    recipient_id: str


def issue(secret: str, tenant_id: uuid.UUID, recipient_id: str, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {
        "tenant_id": str(tenant_id),
        "recipient_id": recipient_id,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secrets: str | Sequence[str], token: str) -> InboxGrant:
    """The grant of a token signed with one of ``secrets`` (one secret, or the current one
    then the previous). PyJWT checks the signature before the claims, so only a secret that
    signed the token gets as far as "expired" or "missing a claim"."""
    candidates = [secrets] if isinstance(secrets, str) else list(secrets)
    for secret in candidates:
        try:
            claims = jwt.decode(
                token, secret, algorithms=[ALGORITHM], options={"require": REQUIRED_CLAIMS}
            )
            return InboxGrant(uuid.UUID(str(claims["tenant_id"])), str(claims["recipient_id"]))
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidToken(f"invalid token: {exc}") from None
    raise InvalidToken("invalid token: Signature verification failed")
