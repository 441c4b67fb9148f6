"""The delivery channels NotifyHub knows."""

from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    INAPP = "inapp"
