"""Signing a webhook delivery, two ways a receiver can check.

- NotifyHub's: ``X-NotifyHub-Signature: sha256=<hex HMAC-SHA256(body, secret)>``.
- Standard Webhooks' (https://www.standardwebhooks.com): ``webhook-id``,
  ``webhook-timestamp`` (Unix seconds) and ``webhook-signature: v1,<base64
  HMAC-SHA256("{id}.{timestamp}.{body}", secret)>``. The timestamp is signed, so a
  receiver can refuse a delivery older than a few minutes (a replay).

The secret is the endpoint's secret as UTF-8 bytes. ``docs/api.md`` ("Outbound webhooks")
has a verification example.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def headers(secret: str, delivery_id: str, event: str, timestamp: int, body: bytes) -> dict[str, str]:
    key = secret.encode()
    legacy = hmac.new(key, body, hashlib.sha256).hexdigest()
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    standard = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-NotifyHub-Signature": f"sha256={legacy}",
        "X-NotifyHub-Event": event,
        "X-NotifyHub-Delivery-ID": delivery_id,
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{standard}",
    }
