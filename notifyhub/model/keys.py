"""The one place a recipient's key is spelled: ``{tenant_id}:{recipient_id}``.

It keys every per-recipient topic and table (so one recipient's records stay in order on
one partition, beside their preferences, caps and held notifications), and it names the
recipient in the inspection views and the inbox token's rate limit.
"""

from __future__ import annotations

import uuid


def recipient_name(tenant_id: uuid.UUID | str, recipient_id: str) -> str:
    return f"{tenant_id}:{recipient_id}"


def recipient_key(tenant_id: uuid.UUID | str, recipient_id: str) -> bytes:
    """The Kafka and table key of one tenant's recipient."""
    return recipient_name(tenant_id, recipient_id).encode()
