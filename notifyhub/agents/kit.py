"""What every batch stage shares: taking batches, parsing them, and its error policy.

A stage's agent takes a batch from its stream (``batches``), parses the records
(``parsed``: the ones that are not its message go to the dead-letter topic with the
reason), hands them to its core, and applies the effects in its documented order:
PostgreSQL first, then the records produced, then the acknowledgement (when the body
of ``async for`` finishes). ``guarded`` is the policy for the rest: an outage is waited
out inside the step; anything else is a bug or poison, and the batch's records go to
the dead-letter topic with the reason instead of crashing the agent (Faust would
acknowledge and skip them).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import faust
from pydantic import BaseModel, ValidationError

from notifyhub.agents.reliability import dead_letter, letter_for
from notifyhub.app import app, dead_letter_topic
from notifyhub.kafka.faust_app import flush_changelogs, take_batches
from notifyhub.model.messages import DeadLetter

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# A batch amortises each stage's I/O (one statement, one produce hand-over); the wait
# bounds the latency a lone record pays for it.
BATCH_SIZE = 500
BATCH_WAIT_SECONDS = 0.002


def batches(
    stream: faust.StreamT[bytes], size: int = BATCH_SIZE, within: float = BATCH_WAIT_SECONDS
) -> AsyncIterator[Sequence[faust.EventT[bytes]]]:
    """The stream's events in batches; each batch is acknowledged when the loop body that
    received it finishes."""
    return take_batches(stream, size, within)


def parsed(
    events: Sequence[faust.EventT[bytes]], model: type[M], what: str, **details: object
) -> tuple[list[tuple[faust.EventT[bytes], M]], list[DeadLetter]]:
    """Each event with its message, and a dead letter for each that is not one."""
    good: list[tuple[faust.EventT[bytes], M]] = []
    bad: list[DeadLetter] = []
    for event in events:
        try:
            good.append((event, model.model_validate_json(event.value)))
        except ValidationError as exc:
            bad.append(letter_for(event, f"invalid {what}: {exc}", **details))
    return good, bad


async def dead_letters(letters: Sequence[DeadLetter], topic: faust.TopicT = dead_letter_topic) -> None:
    for letter in letters:
        await dead_letter(letter, topic)


async def guarded(
    events: Sequence[faust.EventT[bytes]],
    step: Callable[[Sequence[faust.EventT[bytes]]], Awaitable[object]],
    what: str,
    *,
    isolate: bool = True,
    topic: faust.TopicT = dead_letter_topic,
    **details: object,
) -> None:
    """Run a batch's step; on a bug or poison, find the record at fault and send it to the
    dead-letter topic (``topic``, by default the pipeline's) with the reason, to be replayed
    once fixed.

    ``isolate``: run a failed batch again one record at a time, so only the record at fault
    is dead-lettered. Only for steps that may run twice (their writes are idempotent and
    downstream drops what it saw); a step that calls providers dead-letters the whole batch.
    """
    try:
        try:
            await step(events)
        finally:
            # What the step wrote to tables is in their stores: its changelog goes out even
            # when the step failed half-way, so store and changelog stay the same.
            await flush_changelogs(app)
    except Exception as exc:
        if isolate and len(events) > 1:
            logger.warning("%s of %d records failed (%r); one at a time now", what, len(events), exc)
            for event in events:
                await guarded([event], step, what, isolate=False, topic=topic, **details)
            return
        logger.exception("%s of %d records failed; dead-lettering them", what, len(events))
        await dead_letters(
            [letter_for(event, f"internal error in {what}: {exc!r}", **details) for event in events],
            topic,
        )
