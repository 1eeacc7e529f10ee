"""The API against its own OpenAPI document, by schemathesis, over HTTP to the live local API server.

Every request schemathesis generates from /api/openapi.json (valid ones, and ones that break the
schema on purpose) is answered without a 5xx, with a status the document lists for the route, and
with a body that matches the document's model for that status.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Ok
from schemathesis.generation.meta import negated_parameters
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.helpers import api_server

TOKEN = "schema-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = int(os.environ.get("SCHEMA_EXAMPLES", "40"))  # per operation and mode; 300 finds more, in 30 s


@pytest.fixture
def live_api(dsn: str) -> Iterator[str]:
    with api_server(dsn, TOKEN) as url:
        yield url


def operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{url}/api/openapi.json", headers=AUTH)
    found = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in found), found  # the document is valid OpenAPI
    return [result.ok() for result in found if isinstance(result, Ok)]


def conformance_test(operation: Any, mode: GenerationMode, url: str) -> Callable[[], None]:
    """A Hypothesis test sending `operation` generated requests of `mode` and checking every answer."""
    # A job's data is any JSON to the document, but each queue's handler takes only its own payload,
    # and Postgres stores no NUL character: adding a job may refuse a schema-valid body (400).
    excluded = [positive_data_acceptance] if operation.label == "POST /api/jobs" else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def conforms(case: Any) -> None:
        case.call_and_validate(base_url=url, headers=credentials(case), excluded_checks=excluded)

    return conforms


def credentials(case: Any) -> dict[str, str]:
    """The token, unless the case is one that leaves it out on purpose: sending it anyway would turn
    a request that should be refused (401) into a valid one."""
    # Reading `Case.meta` would revalidate the case; its private field is what was generated.
    mutated = {name.lower() for name, where in negated_parameters(case._meta) if where == ParameterLocation.HEADER}
    return {} if "authorization" in mutated else AUTH


# Each operation is driven by Hypothesis directly (not schemathesis' pytest plugin, which the
# pytest in use here does not support), as valid requests and as requests that break the schema.
@pytest.mark.slow
@pytest.mark.parametrize("mode", list(GenerationMode))
def test_every_answer_conforms_to_the_document(live_api: str, mode: GenerationMode) -> None:
    found = operations(live_api)
    assert len(found) == 9
    for operation in found:
        conformance_test(operation, mode, live_api)()


def test_the_document_is_served_to_authenticated_callers_only(live_api: str) -> None:
    document = httpx.get(f"{live_api}/api/openapi.json", headers=AUTH)
    assert document.status_code == 200
    described = document.json()
    assert described["openapi"].startswith("3.1")
    assert set(described["paths"]) == {
        "/api/jobs",
        "/api/jobs/health",
        "/api/jobs/stats",
        "/api/jobs/failed",
        "/api/jobs/batches/{id}",
        "/api/jobs/queues/{name}/history",
        "/api/jobs/{id}",
        "/api/jobs/{id}/{action}",
        "/api/jobs/queues/{name}/{action}",
    }
    assert described["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert httpx.get(f"{live_api}/api/openapi.json").status_code == 401
