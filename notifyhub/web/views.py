"""Importing this module registers every HTTP route on the Faust app."""

from notifyhub.web import health, notifications

__all__ = ["health", "notifications"]
