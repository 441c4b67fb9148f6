"""Provider receipts: what happened to a message after its provider accepted it; and the
recipient's own answer, the one-click unsubscribe link (``unsubscribe``).

Twilio's status callbacks and inbound replies, and Amazon SES events delivered through
Amazon SNS, are verified and turned into ``Receipt`` values here. The package is pure
logic, so it is unit-tested without services; its one I/O is the SNS signing certificate
fetch, done by the function the caller passes to ``SnsVerifier``.
"""
