"""Pure decisions on whether and when to send: frequency caps, quiet hours, retry backoff."""
