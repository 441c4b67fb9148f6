"""Readiness waits for the producer's metadata: topics it has no partitions for are listed
and asked for again (pure logic, with the producer's client faked)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from notifyhub.kafka.faust_app import topics_unknown_to_producer


class FakeClient:
    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.added: list[str] = []
        self.cluster = SimpleNamespace(partitions_for_topic=self._partitions)

    def _partitions(self, topic: str) -> set[int] | None:
        return {0, 1} if topic in self.known else None

    def add_topic(self, topic: str) -> None:
        self.added.append(topic)


def app_with(client: FakeClient) -> Any:
    producer = SimpleNamespace(client=client)
    return SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))


def test_topics_missing_from_the_producer_s_metadata_are_listed_and_asked_for() -> None:
    client = FakeClient(known={"nh.intake", "nh.enrich"})
    missing = topics_unknown_to_producer(
        app_with(client), ["nh.intake", "nh.receipts", "nh.enrich", "nh.held"]
    )
    assert missing == ["nh.held", "nh.receipts"]
    assert sorted(client.added) == ["nh.held", "nh.receipts"]


def test_a_producer_that_knows_every_topic_is_ready() -> None:
    client = FakeClient(known={"nh.intake"})
    assert topics_unknown_to_producer(app_with(client), ["nh.intake"]) == []
    assert client.added == []
