"""Dead letters: persist every message a stage gave up on (the pipeline's dead-letter topic
and each channel's send DLQ), for the admin DLQ API."""

from __future__ import annotations

import logging

import faust
from pydantic import ValidationError

from notifyhub.agents.kit import batches
from notifyhub.agents.reliability import through_outages
from notifyhub.app import all_dead_letter_topics, app, resources
from notifyhub.db import dead_letters
from notifyhub.messages import DeadLetter

logger = logging.getLogger(__name__)

# Dead letters are rare and not urgent: a longer wait gathers more of them per insert.
BATCH_WAIT_SECONDS = 0.2


def _parse(raw: bytes) -> DeadLetter | None:
    try:
        return DeadLetter.model_validate_json(raw)
    except ValidationError as exc:
        logger.error("skipping a malformed dead letter: %s", exc)
        return None


async def _persist(letters: list[DeadLetter]) -> None:
    await dead_letters.insert_many(await resources.db(), letters)


@app.agent(all_dead_letter_topics, name="dead-letters")
async def persist_dead_letters(stream: faust.StreamT) -> None:
    async for batch in batches(stream, within=BATCH_WAIT_SECONDS):
        letters = [letter for event in batch if (letter := _parse(event.value)) is not None]
        if letters:
            await through_outages(lambda ls=letters: _persist(ls), "persist dead letters")
