"""Importing this module registers every HTTP route on the Faust app."""

from notifyhub.web import (
    admin,
    browser_inbox,
    dead_letters,
    health,
    inbox,
    inbox_stream,
    inspection,
    notifications,
    openapi,
    quotas,
    recipients,
    templates,
    topics,
    webhooks,
)

__all__ = [
    "admin",
    "browser_inbox",
    "dead_letters",
    "health",
    "inbox",
    "inbox_stream",
    "inspection",
    "notifications",
    "openapi",
    "quotas",
    "recipients",
    "templates",
    "topics",
    "webhooks",
]
