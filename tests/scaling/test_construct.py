"""The PredictiveScaling construct synthesizes (one synth per session, cdk-nag's AwsSolutions on)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Match, Template

from core.errors import SettingsError
from infra.constructs.predictive_scaling import PredictiveScaling
from infra.nag import acknowledge, attach_checks

TAG = PredictiveScaling.TAG_KEY


def _serving_like_stack(app: App) -> tuple[Stack, PredictiveScaling]:
    stack = Stack(app, "ScalingTest")
    function = lambda_.Function(
        stack,
        "Api",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
    )
    # A stand-in for the serving function: only the forecaster is under test.
    acknowledge(function, "AwsSolutions-L1", "stand-in serving function of the test, not part of the construct")
    acknowledge(
        function,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "stand-in serving function of the test, not part of the construct",
    )
    alias = lambda_.Alias(stack, "Live", alias_name="live", version=function.current_version)
    resource_id = f"function:{function.function_name}:live"
    target = appscaling.ScalableTarget(
        stack,
        "Target",
        service_namespace=appscaling.ServiceNamespace.LAMBDA,
        resource_id=resource_id,
        scalable_dimension="lambda:function:ProvisionedConcurrency",
        min_capacity=1,
        max_capacity=20,
    )
    target.node.add_dependency(alias)
    scaling = PredictiveScaling(
        stack,
        "PredictiveScaling",
        function_name=function.function_name,
        alias_name=alias.alias_name,
        scalable_target_resource_id=resource_id,
        scalable_target=target,
        min_capacity=1,
        max_capacity=20,
        headroom=1.2,
        log_retention=logs.RetentionDays.TWO_WEEKS,
    )
    return stack, scaling


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> dict[str, Any]:
    outdir = tmp_path_factory.mktemp("cdk-scaling")
    app = App(outdir=str(outdir))
    _serving_like_stack(app)
    attach_checks(app)
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings fail synthesis
        error = str(exc)
    report = outdir / "validation-report.json"
    return {
        "outdir": outdir,
        "error": error,
        "report": report.read_text() if report.is_file() else "",
        "template": json.loads((outdir / "ScalingTest.template.json").read_text()) if error is None else {},
    }


def test_synthesizes_without_nag_findings(synthesized):
    assert synthesized["error"] is None, synthesized["report"][:4000]


def test_forecaster_function_and_its_settings(synthesized):
    template = Template.from_json(synthesized["template"])
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "scaling.lambda_handler.handler",
            "Runtime": "python3.12",
            "Architectures": ["arm64"],
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "RECS_SCALING_FUNCTION_NAME": {"Ref": Match.string_like_regexp("^Api")},
                        "RECS_SCALING_ALIAS": "live",
                        "RECS_SCALING_MIN_CAPACITY": "1",
                        "RECS_SCALING_MAX_CAPACITY": "20",
                        "RECS_SCALING_HEADROOM": "1.2",
                        "RECS_SCALING_DRY_RUN": "false",
                        "RECS_SCALING_RESOURCE_ID": Match.any_value(),
                    }
                )
            },
        },
    )
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 14})


def test_hourly_schedule_with_retries(synthesized):
    template = Template.from_json(synthesized["template"])
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "cron(5 * * * ? *)",
            "Targets": [
                Match.object_like({"RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600}})
            ],
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Permission", {"Principal": "events.amazonaws.com", "Action": "lambda:InvokeFunction"}
    )


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                out += policy["PolicyDocument"]["Statement"]
        if resource["Type"] == "AWS::IAM::Policy":
            out += resource["Properties"]["PolicyDocument"]["Statement"]
    return out


def test_least_privilege(synthesized):
    statements = {s.get("Sid"): s for s in _statements(synthesized["template"]) if s.get("Sid")}
    write = statements["WriteScheduledActionsOnTheAlias"]
    assert sorted(write["Action"]) == [
        "application-autoscaling:DeleteScheduledAction",
        "application-autoscaling:PutScheduledAction",
    ]
    assert "scalable-target/*" in json.dumps(write["Resource"])
    condition = write["Condition"]["StringEquals"][f"aws:ResourceTag/{TAG}"]
    assert "live" in json.dumps(condition)
    assert statements["ReadMetrics"]["Action"] == "cloudwatch:GetMetricData"
    assert sorted(statements["DescribeScaling"]["Action"]) == [
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:DescribeScheduledActions",
    ]
    assert statements["WriteOwnLogs"]["Resource"] != "*"
    # Nothing else may write scaling configuration.
    for statement in _statements(synthesized["template"]):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            if action.startswith("application-autoscaling:") and not action.split(":")[1].startswith("Describe"):
                assert "Condition" in statement, statement


def test_the_scalable_target_carries_the_tag(synthesized):
    template = Template.from_json(synthesized["template"])
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {"Tags": Match.array_with([{"Key": TAG, "Value": Match.any_value()}])},
    )


def test_the_asset_is_the_scaling_package_and_the_settings_kernel_only(synthesized):
    outdir: Path = synthesized["outdir"]
    handlers = list(outdir.glob("asset.*/scaling/lambda_handler.py"))
    assert len(handlers) == 1
    asset = handlers[0].parent.parent
    assert sorted(p.name for p in asset.iterdir()) == ["core", "scaling"]
    assert sorted(p.name for p in (asset / "core").iterdir()) == ["__init__.py", "errors.py", "settings.py"]


def test_bad_bounds_fail_at_synth_time():
    stack = Stack(App(), "Bad")
    with pytest.raises(SettingsError, match="RECS_SCALING_MAX_CAPACITY"):
        PredictiveScaling(
            stack, "P", function_name="f", alias_name="live", scalable_target_resource_id="function:f:live",
            min_capacity=5, max_capacity=2,
        )
