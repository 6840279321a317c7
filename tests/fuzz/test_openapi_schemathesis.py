"""Schemathesis against the OpenAPI document a running local server serves (``GET /openapi.json``).

Every operation of the document gets Hypothesis-generated requests, schema-valid ("positive") and
schema-invalid ("negative"), sent over HTTP to ``recs serve``'s server on the embedded defaults.
Schemathesis's checks run on every answer: never a 5xx, the status code, content type, headers
and body as the document says, negative data rejected with a 4xx. One documented rule JSON Schema
cannot express (``year_min <= year_max``) is the only 4xx a valid request may get, besides 404
for a movie id the catalog does not hold.

(Schemathesis's pytest plugin does not work with pytest 9 yet: ``request.node._nodeid``. The
operations are run here with its Python API, ``APIOperation.as_strategy`` and
``Case.call_and_validate``.)
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from recommender.handler import openapi_document
from recs.local.server import LocalServer

EXAMPLES = 200


def _operations() -> list[tuple[str, str, bool]]:
    """(method, path, takes input) of each operation the handler documents."""
    document = json.loads(openapi_document())
    return [(method.upper(), path, bool(op.get("parameters") or op.get("requestBody")))
            for path, item in document["paths"].items() for method, op in item.items()]


OPERATIONS = [(method, path) for method, path, _ in _operations()]
# negative examples need something to make invalid: operations without parameters or body get none
CASES = [(method, path, mode) for method, path, has_input in _operations()
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_input or mode.is_positive]


@pytest.fixture(scope="module")
def schema(served: LocalServer) -> Any:
    return schemathesis.openapi.from_url(f"{served.url}/openapi.json")


def _has_inputs(operation: Any) -> bool:
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))


def _documented_rejection(answer: Any) -> bool:
    """The only 4xx a schema-valid body may get: the year bounds out of order (a cross-field rule)."""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    return bool(errors) and all(
        e["field"] == "filters.year_max" and "less than year_min" in e["reason"] for e in errors
    )


def _dropped_on_the_wire(case: Any) -> bool:
    """A negative case whose only invalid part is a query parameter with an empty list as its value,
    which the query string leaves out altogether (so a valid request is what the server gets)."""
    return any(value == [] for value in (case.query or {}).values())


def test_every_operation_of_the_served_document_is_fuzzed(schema: Any) -> None:
    served = sorted((op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations())
    assert served == sorted(OPERATIONS)
    assert ("POST", "/recommendations") in served


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode}" for m, p, mode in CASES])
def test_operation(schema: Any, served: LocalServer, method: str, path: str, mode: GenerationMode) -> None:
    operation = schema[path][method]
    statuses: Counter[int | str] = Counter()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        # every built-in check, except that a schema-valid request may meet the documented cross-field rule
        response = case.call_and_validate(base_url=served.url, excluded_checks=[positive_data_acceptance])
        if mode is GenerationMode.NEGATIVE and response.status_code == 200 and _dropped_on_the_wire(case):
            statuses["valid as sent"] += 1  # e.g. an unknown parameter whose value is []: nothing of it is sent
            return
        statuses[response.status_code] += 1
        assert response.status_code < 500, response.text
        if mode is GenerationMode.POSITIVE and response.status_code not in (200, 404):
            assert response.status_code == 422 and _documented_rejection(response.json()), (
                f"a schema-valid request was refused: {case.as_curl_command()} -> {response.status_code} "
                f"{response.text}")

    check()
    assert sum(statuses.values()) >= (EXAMPLES if _has_inputs(operation) else 1)
    if mode is GenerationMode.POSITIVE:
        assert statuses[200] > 0, statuses  # valid requests were answered, not only refused
    else:
        assert set(statuses) - {"valid as sent"} <= {400, 404, 405, 413, 415, 422}, statuses
