"""The names of NotifyHub's topics, and which lane a notification takes.

Plain names (no Faust here), so that the stage cores can say where a record goes
without importing the app: ``notifyhub.app`` declares the Faust topics from these.
Stages with a ``.priority`` twin have two lanes: the most urgent notifications, with
``priority <= NOTIFYHUB_PRIORITY_THRESHOLD`` (1 is the most urgent, as in NotifyHub), take
the priority lane, which its own agent consumes, so they never wait behind a normal backlog.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from notifyhub.model.channels import Channel
from notifyhub.runtime.settings import Settings


class Lane(StrEnum):
    NORMAL = "normal"
    PRIORITY = "priority"


@dataclass(frozen=True)
class TopicNames:
    """Every topic's full name for one deployment (``{prefix}.{name}``)."""

    prefix: str
    priority_threshold: int

    @classmethod
    def of(cls, settings: Settings) -> TopicNames:
        return cls(settings.topic_prefix, settings.priority_threshold)

    def lane_for(self, priority: int) -> Lane:
        """The priority lane for the most urgent (1 up to the threshold), else the normal one."""
        return Lane.PRIORITY if priority <= self.priority_threshold else Lane.NORMAL

    def named(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def lane(self, name: str, lane: Lane) -> str:
        return self.named(name if lane is Lane.NORMAL else f"{name}.priority")

    def intake(self, priority: int) -> str:
        return self.lane("intake", self.lane_for(priority))

    def enrich(self, priority: int) -> str:
        return self.lane("enrich", self.lane_for(priority))

    def send(self, channel: Channel, priority: int) -> str:
        return self.lane(f"send.{channel}", self.lane_for(priority))

    def send_dead_letters(self, channel: Channel) -> str:
        return self.named(f"send.{channel}.dlq")

    @property
    def held(self) -> str:
        return self.named("held")

    @property
    def delivery_events(self) -> str:
        return self.named("delivery-events")

    @property
    def dead_letters(self) -> str:
        return self.named("dead-letters")

    @property
    def device_token_events(self) -> str:
        return self.named("device-token-events")

    @property
    def webhooks_outbound(self) -> str:
        return self.named("webhooks.outbound")

    @property
    def webhook_dead_letters(self) -> str:
        return self.named("webhooks.dlq")

    @property
    def preference_updates(self) -> str:
        return self.named("preference-updates")

    @property
    def topic_fanout(self) -> str:
        return self.named("topic-fanout")

    @property
    def receipts(self) -> str:
        return self.named("receipts")
