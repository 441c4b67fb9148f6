"""Stateful fuzzing: schemathesis follows the document's links from what an operation creates
(a template, a webhook endpoint, a notification, ...) to the operations on it, so generated
requests reach real resources, not only ids that do not exist."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis.errors import Flaky
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

from tests.support.api import Tenant
from tests.support.openapi import (
    FUZZ_CHECKS,
    FUZZ_REQUEST_TIMEOUT_SECONDS,
    UNTHROTTLED_RATE_LIMIT,
    server_traceback,
)
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

# A bounded run: about 6,000 calls in about a minute and a half on a 2-core machine, in
# scenarios of up to STATEFUL_STEPS_PER_SCENARIO calls (a create, then calls on what it created).
STATEFUL_SCENARIOS = 800
STATEFUL_STEPS_PER_SCENARIO = 10
# The server's state changes under Hypothesis (a name taken, a resource deleted), so a run can
# stop as "flaky" when a replayed choice meets a different answer; it is then started again
# for the scenarios left, as schemathesis's own runner does, at most this many times.
STATEFUL_RESTARTS = 20
# Only the document's links: schemathesis would also infer some from field names, among them
# notification.tenant_id → PATCH /internal/tenants/{tenant_id}, which deactivates the run's own
# tenant, after which every tenant call is a 403 and tests nothing.
ONLY_DOCUMENTED_LINKS = SchemathesisConfig.from_dict(
    {"phases": {"stateful": {"inference": {"algorithms": []}}}}
)


@pytest.fixture(scope="module")
def stateful_worker(worker_factory: Callable[..., Worker]) -> Worker:
    """A worker that never throttles: the run sends hundreds of requests with one key."""
    return worker_factory(NOTIFYHUB_API_RATE_LIMIT=UNTHROTTLED_RATE_LIMIT)


def test_following_links_finds_no_server_error_and_no_undocumented_answer(
    stateful_worker: Worker, tenant: Tenant
) -> None:
    """Scenarios of linked calls; every answer is checked against the document.

    Every kind of failure is reported (not only the first): how to reproduce it with curl,
    and for a server error the worker's traceback.
    """
    schema = schemathesis.openapi.from_url(
        f"{stateful_worker.base_url}/openapi.json", config=ONLY_DOCUMENTED_LINKS
    )
    headers = {**tenant.headers, **stateful_worker.admin_headers}
    checks = [getattr(schemathesis.checks, name) for name in FUZZ_CHECKS]
    failures: dict[tuple[str, str], str] = {}
    calls: collections.Counter[str] = collections.Counter()
    scenarios = 0
    restarts = 0

    with requests.Session() as session:
        # The base class is made at run time from the schema, so mypy cannot see it.
        class Scenario(schema.as_state_machine()):  # type: ignore[misc]
            def teardown(self) -> None:
                nonlocal scenarios
                scenarios += 1
                super().teardown()

            def step(self, input: StepInput) -> StepOutput:
                calls["followed a link" if input.transition is not None else "fresh"] += 1
                output: StepOutput = super().step(input)
                return output

            def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
                return {
                    "base_url": stateful_worker.base_url,
                    "session": session,
                    "headers": headers,
                    "timeout": FUZZ_REQUEST_TIMEOUT_SECONDS,
                }

            def validate_response(
                self, response: Any, case: schemathesis.Case[Any], *args: Any, **kwargs: Any
            ) -> None:
                # Failures are recorded, not raised: the scenario goes on, and Hypothesis has
                # nothing to shrink (shrinking would replay whole scenarios).
                try:
                    case.validate_response(response, checks=checks)
                except FailureGroup as exc:
                    for failure in exc.exceptions:
                        kind = (case.operation.label, failure.title)
                        if kind not in failures:
                            traceback = (
                                server_traceback(stateful_worker, response)
                                if response.status_code >= 500
                                else ""
                            )
                            failures[kind] = f"{case.operation.label}: {exc}{traceback}"

        for _ in range(STATEFUL_RESTARTS):
            if scenarios >= STATEFUL_SCENARIOS:
                break
            try:
                Scenario.run(
                    settings=hypothesis.settings(
                        max_examples=STATEFUL_SCENARIOS - scenarios,
                        stateful_step_count=STATEFUL_STEPS_PER_SCENARIO,
                        deadline=None,
                        database=None,
                        phases=[hypothesis.Phase.generate],
                        suppress_health_check=list(hypothesis.HealthCheck),
                    )
                )
            except Flaky:
                restarts += 1

    print(
        f"stateful fuzzing: {scenarios} scenarios, {calls.total()} API calls ({dict(calls)}),"
        f" {restarts} restarts"
    )
    assert calls["followed a link"], "no scenario followed a link: are the links still there?"
    assert not failures, "\n\n".join(failures.values())
