"""IAM least privilege: no wildcard actions, and '*' resources only for actions that accept nothing else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.infra.conftest import Synthesis, resources

STAR_RESOURCE_ACTIONS = {
    # Lambda's ENIs in the VPC (what AWSLambdaVPCAccessExecutionRole grants): no resource-level permissions.
    "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
    # X-Ray (only with tracing on).
    "xray:PutTraceSegments", "xray:PutTelemetryRecords",
    # The task execution role's registry login (CDK's policy): ecr:GetAuthorizationToken supports only '*'.
    "ecr:GetAuthorizationToken",
    # The predictive-scaling forecaster's reads (no resource-level permissions); its writes are tag-scoped.
    "cloudwatch:GetMetricData",
    "application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScheduledActions",
}

ALLOWED_MANAGED_POLICIES = {
    # CDK's own custom resource that strips the rules of the VPC's default security group at deploy
    # (feature flag @aws-cdk/aws-ec2:restrictDefaultSecurityGroup).
    "CustomVpcRestrictDefaultSGCustomResourceProviderRole": "service-role/AWSLambdaBasicExecutionRole",
    # The account-wide API Gateway logging role (apiGatewayAccountRole=create): the stage's access logs need it.
    "ApiCloudWatchRole": "service-role/AmazonAPIGatewayPushToCloudWatchLogs",
    # CDK's AwsCustomResource provider (the alias' initial provisioned concurrency, once at creation).
    "AWS679f53fac002430cb0da5b7982bd2287": "service-role/AWSLambdaBasicExecutionRole",
}


def _statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props["PolicyDocument"]]
        elif resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        else:
            continue
        for document in documents:
            for statement in document["Statement"]:
                yield logical_id, statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _check(synthesis: Synthesis) -> None:
    for stack in ("data", "serving"):
        template = synthesis.template_json(stack)
        for logical_id, statement in _statements(template):
            if statement["Effect"] != "Allow":
                continue
            actions = _as_list(statement["Action"])
            assert not any(a == "*" or a.endswith(":*") for a in actions), (logical_id, actions)
            if "*" in _as_list(statement.get("Resource")):
                assert set(actions) <= STAR_RESOURCE_ACTIONS, (logical_id, actions)
        for logical_id, role in resources(template, "AWS::IAM::Role").items():
            for arn in role["Properties"].get("ManagedPolicyArns", []):
                allowed = [name for prefix, name in ALLOWED_MANAGED_POLICIES.items() if prefix in logical_id]
                text = json.dumps(arn).rstrip('"]}')
                assert len(allowed) == 1 and text.endswith(f":iam::aws:policy/{allowed[0]}"), (logical_id, arn)


def test_default_app_is_least_privilege(default_app: Synthesis) -> None:
    _check(default_app)


def test_variant_app_is_least_privilege(variant_app: Synthesis) -> None:
    _check(variant_app)


def test_every_cold_start_strategy_is_least_privilege(provisioned_app: Synthesis, snapstart_app: Synthesis) -> None:
    _check(provisioned_app)
    _check(snapstart_app)


def test_the_clients_read_only_their_bucket_prefixes(default_app: Synthesis) -> None:
    data = default_app.template_json("data")
    reads: dict[str, set[str]] = {}
    for _, statement in _statements(data):
        if statement.get("Sid") == "ReadObjects":
            for resource in _as_list(statement["Resource"]):
                parts = resource["Fn::Join"][1]
                reads.setdefault(str(statement["Action"]), set()).add(parts[-1])
    assert reads == {"s3:GetObject": {"/bundles/*", "/deltas/*"}}
    # only the retraining task writes, under bundles/, and only objects that do not exist yet (If-None-Match)
    writes = [(k, s) for k, s in _statements(data) if any(a.startswith(("s3:Put", "s3:Delete"))
                                                         for a in _as_list(s["Action"]))]
    assert [k.startswith("RetrainBucketAccess") for k, _ in writes] == [True]
    (_, write), = writes
    assert write["Action"] == "s3:PutObject" and write["Condition"] == {"Null": {"s3:if-none-match": "false"}}
    assert [r["Fn::Join"][1][-1] for r in _as_list(write["Resource"])] == ["/bundles/*"]


def test_the_function_reads_only_the_bundle_root(default_app: Synthesis) -> None:
    # RECS_BUNDLE is s3://<bucket>/bundles/: the function may read under bundles/ and nothing else
    data = default_app.template_json("data")
    role_id = next(k for k, v in resources(data, "AWS::IAM::Role").items()
                   if v["Properties"].get("Description") == "recommender function")
    granted: dict[str, set[str]] = {}
    for resource in resources(data, "AWS::IAM::Policy").values():
        if {"Ref": role_id} not in resource["Properties"].get("Roles", []):
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            for action in _as_list(statement["Action"]):
                if action.startswith("s3:"):
                    where = {json.dumps(r) for r in _as_list(statement["Resource"])}
                    prefixes = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
                    granted.setdefault(action, set()).update(where | set(_as_list(prefixes or [])))
    assert set(granted) == {"s3:GetObject", "s3:ListBucket"}
    assert all(w.endswith('/bundles/*"]]}') for w in granted["s3:GetObject"]), granted
    assert "bundles/*" in granted["s3:ListBucket"] and not any("deltas" in w for w in granted["s3:ListBucket"])
