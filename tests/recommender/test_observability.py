"""What the cold start pays for observability: a Tracer (and the X-Ray SDK) only inside Lambda with tracing on."""

from __future__ import annotations

import pytest

from recommender.observability import Tracing, tracing_wanted


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),  # not in Lambda (tests, recs serve)
        ({"LAMBDA_TASK_ROOT": "/var/task"}, True),  # in Lambda with -c tracing=true
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, False),  # the CDK app's default
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "false"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, False),
    ],
)
def test_tracing_is_wanted_only_in_lambda_with_tracing_on(env: dict[str, str], wanted: bool) -> None:
    assert tracing_wanted(env) is wanted


def test_spans_without_tracing_are_no_ops() -> None:
    tracing = Tracing(False)
    assert tracing.tracer is None
    with tracing.span("## recommend"):
        tracing.annotate("cached", True)
