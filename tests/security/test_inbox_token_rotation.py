"""Rotating the inbox-token secret: tokens signed with the previous secret stay valid,
new ones are signed with the current one, and no other secret opens an inbox."""

from __future__ import annotations

import uuid

import jwt
import pytest

from notifyhub.inbox import tokens as inbox_tokens

CURRENT = "current-" + "c" * 32
PREVIOUS = "previous-" + "p" * 32
TENANT = uuid.uuid4()
TTL_SECONDS = 900


def test_a_token_signed_with_the_previous_secret_is_still_accepted() -> None:
    token = inbox_tokens.issue(PREVIOUS, TENANT, "ada", TTL_SECONDS)
    grant = inbox_tokens.verify((CURRENT, PREVIOUS), token)
    assert grant == inbox_tokens.InboxGrant(TENANT, "ada")


def test_a_token_signed_with_the_current_secret_is_accepted_with_or_without_a_previous() -> None:
    token = inbox_tokens.issue(CURRENT, TENANT, "ada", TTL_SECONDS)
    assert inbox_tokens.verify((CURRENT, PREVIOUS), token).recipient_id == "ada"
    assert inbox_tokens.verify(CURRENT, token).recipient_id == "ada"


def test_once_the_previous_secret_is_unset_its_tokens_are_refused() -> None:
    token = inbox_tokens.issue(PREVIOUS, TENANT, "ada", TTL_SECONDS)
    with pytest.raises(inbox_tokens.InvalidToken, match="Signature verification failed"):
        inbox_tokens.verify(CURRENT, token)


def test_a_token_signed_with_an_unknown_secret_is_refused() -> None:
    token = inbox_tokens.issue("someone-else-" + "x" * 32, TENANT, "ada", TTL_SECONDS)
    with pytest.raises(inbox_tokens.InvalidToken, match="Signature verification failed"):
        inbox_tokens.verify((CURRENT, PREVIOUS), token)


def test_an_expired_token_of_the_previous_secret_says_it_expired() -> None:
    token = inbox_tokens.issue(PREVIOUS, TENANT, "ada", -1)
    with pytest.raises(inbox_tokens.InvalidToken, match="expired"):
        inbox_tokens.verify((CURRENT, PREVIOUS), token)


def test_an_unsigned_token_is_refused_with_a_previous_secret_set() -> None:
    claims = {"tenant_id": str(TENANT), "recipient_id": "ada", "iat": 0, "exp": 2**31}
    # PyJWT's annotation wants a key even for "none", which takes None.
    token = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(inbox_tokens.InvalidToken, match="invalid token"):
        inbox_tokens.verify((CURRENT, PREVIOUS), token)
