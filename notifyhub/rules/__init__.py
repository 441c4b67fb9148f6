"""Pure decisions on whether to send now: frequency caps and quiet hours."""
