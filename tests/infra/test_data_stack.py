"""The data/indexing tier: who may reach OpenSearch and Redis, encryption, the bucket, the indexer trigger."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from tests.infra.conftest import Synthesis, cross_stack, find_by_description, only, recommender_function, resources

ANYWHERE = ("0.0.0.0/0", "::/0")


def _ingress_rules(template: dict[str, Any], group_id: str) -> list[dict[str, Any]]:
    """Every ingress rule of a security group, standalone or inline."""
    rules = [
        r["Properties"]
        for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}
    ]
    rules += template["Resources"][group_id]["Properties"].get("SecurityGroupIngress", [])
    return rules


def _source_groups(rules: list[dict[str, Any]]) -> set[str]:
    return {r["SourceSecurityGroupId"]["Fn::GetAtt"][0] for r in rules}


def _indexer_task(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The indexer's task definition (the data stack also holds the retraining task's)."""
    found = [(k, v) for k, v in resources(data, "AWS::ECS::TaskDefinition").items()
             if [c["Name"] for c in v["Properties"]["ContainerDefinitions"]] == ["indexer"]]
    assert len(found) == 1, found
    return found[0]


def test_only_the_recommender_the_indexer_and_the_retrainer_reach_redis_and_opensearch(data: dict[str, Any]) -> None:
    recommender = find_by_description(data, "AWS::EC2::SecurityGroup", "recommender function")
    indexer = find_by_description(data, "AWS::EC2::SecurityGroup", "indexer task")
    retrainer = find_by_description(data, "AWS::EC2::SecurityGroup", "retraining task")
    redis = find_by_description(data, "AWS::EC2::SecurityGroup", "Redis: TLS")
    domain = find_by_description(data, "AWS::EC2::SecurityGroup", "OpenSearch domain: HTTPS")

    redis_rules = _ingress_rules(data, redis)
    assert _source_groups(redis_rules) == {recommender, indexer, retrainer}
    assert {(r["FromPort"], r["ToPort"]) for r in redis_rules} == {(6380, 6380)}
    assert all("CidrIp" not in r and "CidrIpv6" not in r for r in redis_rules)

    domain_rules = _ingress_rules(data, domain)
    assert _source_groups(domain_rules) == {recommender, indexer, retrainer}
    assert {(r["FromPort"], r["ToPort"]) for r in domain_rules} == {(443, 443)}

    _, cache = only(data, "AWS::ElastiCache::ReplicationGroup")
    assert cache["Properties"]["SecurityGroupIds"] == [{"Fn::GetAtt": [redis, "GroupId"]}]
    _, opensearch = only(data, "AWS::OpenSearchService::Domain")
    assert opensearch["Properties"]["VPCOptions"]["SecurityGroupIds"] == [{"Fn::GetAtt": [domain, "GroupId"]}]


def test_the_opensearch_access_policy_names_only_the_three_client_roles(data: dict[str, Any]) -> None:
    _, domain = only(data, "AWS::OpenSearchService::Domain")
    statements = domain["Properties"]["AccessPolicies"]["Statement"]
    principals = {s["Principal"]["AWS"]["Fn::GetAtt"][0] for s in statements}
    roles = {
        k for k, v in resources(data, "AWS::IAM::Role").items()
        if v["Properties"].get("Description") in ("recommender function", "indexer task", "retraining task")
    }
    assert principals == roles and len(roles) == 3
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all(a.startswith("es:ESHttp") and "*" not in a for a in actions)
    by_role: dict[str, set[str]] = {}
    for s in statements:
        description = data["Resources"][s["Principal"]["AWS"]["Fn::GetAtt"][0]]["Properties"]["Description"]
        by_role.setdefault(description, set()).update(s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    assert by_role["recommender function"] == {"es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"}
    assert "es:ESHttpDelete" in by_role["indexer task"]
    assert by_role["retraining task"] == {"es:ESHttpGet", "es:ESHttpHead"}
    posts = [s for s in statements if s["Action"] == "es:ESHttpPost"]
    assert [r["Fn::Join"][1][-1].removeprefix(":domain/recs-vectors/") for r in posts[0]["Resource"]] == [
        "movies/_search", "movies/_mget", "movies/_count"]


def test_the_lambda_runs_with_the_recommender_role_and_group_in_private_subnets(
    data: dict[str, Any], serving: dict[str, Any]
) -> None:
    _, function = recommender_function(serving)
    props = function["Properties"]
    role = cross_stack(data, props["Role"])
    assert data["Resources"][role["Fn::GetAtt"][0]]["Properties"]["Description"] == "recommender function"
    groups = [cross_stack(data, g) for g in props["VpcConfig"]["SecurityGroupIds"]]
    assert groups == [{"Fn::GetAtt": [find_by_description(data, "AWS::EC2::SecurityGroup", "recommender function"),
                                      "GroupId"]}]
    subnets = [cross_stack(data, s)["Ref"] for s in props["VpcConfig"]["SubnetIds"]]
    assert subnets and all(data["Resources"][s]["Type"] == "AWS::EC2::Subnet" for s in subnets)
    assert all(data["Resources"][s]["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets)


def test_nothing_is_open_to_the_internet(default_app: Synthesis) -> None:
    for stack in ("data", "serving"):
        template = default_app.template_json(stack)
        for group in resources(template, "AWS::EC2::SecurityGroup").values():
            for rule in group["Properties"].get("SecurityGroupIngress", []):
                assert rule.get("CidrIp") not in ANYWHERE and rule.get("CidrIpv6") not in ANYWHERE
        for rule in resources(template, "AWS::EC2::SecurityGroupIngress").values():
            assert rule["Properties"].get("CidrIp") not in ANYWHERE
    data = default_app.template_json("data")
    assert not resources(data, "AWS::EC2::InternetGateway"), "the default VPC has no internet gateway"
    assert not resources(data, "AWS::EC2::NatGateway")


def test_data_services_are_encrypted(default_app: Synthesis) -> None:
    template = default_app.template("data")
    template.has_resource_properties("AWS::OpenSearchService::Domain", {
        "EncryptionAtRestOptions": {"Enabled": True},
        "NodeToNodeEncryptionOptions": {"Enabled": True},
        "DomainEndpointOptions": {"EnforceHTTPS": True, "TLSSecurityPolicy": Match.string_like_regexp("TLS-1-2")},
        "EngineVersion": "OpenSearch_2.19",
        "ClusterConfig": Match.object_like({"InstanceType": "t3.small.search", "InstanceCount": 1}),
    })
    template.has_resource_properties("AWS::ElastiCache::ReplicationGroup", {
        "AtRestEncryptionEnabled": True,
        "TransitEncryptionEnabled": True,
        "TransitEncryptionMode": "required",
        "Engine": "redis",
        "AuthToken": {
            "Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": Match.any_value()}, ":SecretString:::}}"]]
        },
    })
    template.all_resources_properties("AWS::S3::Bucket", {
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
    })
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.all_resources_properties("AWS::SQS::Queue", {"SqsManagedSseEnabled": True})


def test_no_bucket_is_public_and_every_bucket_requires_tls(data: dict[str, Any]) -> None:
    buckets = resources(data, "AWS::S3::Bucket")
    assert len(buckets) == 2  # bundles and their access logs
    for bucket in buckets.values():
        assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
        }
        assert bucket["DeletionPolicy"] == "Retain"
    policies = {p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]["Statement"]
                for p in resources(data, "AWS::S3::BucketPolicy").values()}
    assert set(policies) == set(buckets)
    for statements in policies.values():
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in statements)
        assert not any(s["Effect"] == "Allow" and s.get("Principal") in ("*", {"AWS": "*"}) for s in statements)


def test_the_bundle_bucket_is_versioned_logged_and_sends_events(data: dict[str, Any]) -> None:
    bundles = [b for b in resources(data, "AWS::S3::Bucket").values() if "LoggingConfiguration" in b["Properties"]]
    assert len(bundles) == 1
    props = bundles[0]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}


def test_an_upload_of_a_manifest_or_a_delta_runs_the_indexer_task_with_the_bucket_and_key(
    data: dict[str, Any],
) -> None:
    task_id, task = _indexer_task(data)
    rules = [r for r in resources(data, "AWS::Events::Rule").values()
             if r["Properties"].get("EventPattern", {}).get("source") == ["aws.s3"]
             and r["Properties"]["Targets"][0]["EcsParameters"]["TaskDefinitionArn"] == {"Ref": task_id}]
    assert len(rules) == 1
    rule = rules[0]["Properties"]
    bucket_id = next(
        k for k, b in resources(data, "AWS::S3::Bucket").items() if "LoggingConfiguration" in b["Properties"]
    )
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    assert rule["EventPattern"]["detail"]["bucket"]["name"] == [{"Ref": bucket_id}]
    assert rule["EventPattern"]["detail"]["object"]["key"] == [
        {"wildcard": "bundles/*/manifest.json"}, {"prefix": "deltas/"}
    ]
    (target,) = rule["Targets"]
    assert target["EcsParameters"]["TaskDefinitionArn"] == {"Ref": task_id}
    assert target["EcsParameters"]["LaunchType"] == "FARGATE"
    assert target["EcsParameters"]["NetworkConfiguration"]["AwsVpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] >= 1

    transformer = target["InputTransformer"]
    paths = transformer["InputPathsMap"]
    overrides = json.loads(
        _fill(transformer["InputTemplate"], {name: json.dumps(f"from {path}") for name, path in paths.items()})
    )
    (container,) = overrides["containerOverrides"]
    container_names = [c["Name"] for c in task["Properties"]["ContainerDefinitions"]]
    assert container["name"] in container_names
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env == {"RECS_S3_BUCKET": "from $.detail.bucket.name", "RECS_S3_KEY": "from $.detail.object.key"}


def _fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace(f"<{name}>", value)
    return template


def test_the_indexer_task_gets_the_data_tier_endpoints(data: dict[str, Any]) -> None:
    _, task = _indexer_task(data)
    (container,) = task["Properties"]["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert set(env) == {"RECS_OPENSEARCH_URL", "RECS_OPENSEARCH_ALIAS", "RECS_REDIS_URL", "RECS_REDIS_AUTH_SECRET_ARN",
                        "RECS_S3_BUCKET", "RECS_INDEX_REPLICAS"}
    assert env["RECS_INDEX_REPLICAS"] == "0"  # one data node: a replica could never be assigned
    assert env["RECS_OPENSEARCH_URL"]["Fn::Join"][1][0] == "https://"
    assert env["RECS_REDIS_URL"]["Fn::Join"][1][0] == "rediss://"
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert task["Properties"]["RequiresCompatibilities"] == ["FARGATE"]


def test_a_failed_indexer_run_is_published_to_the_alarm_topic(data: dict[str, Any]) -> None:
    topic_id, _ = only(data, "AWS::SNS::Topic")
    rules = [r["Properties"] for r in resources(data, "AWS::Events::Rule").values()
             if r["Properties"].get("EventPattern", {}).get("source") == ["aws.ecs"]
             and "indexer" in json.dumps(r["Properties"]["EventPattern"])]
    assert len(rules) == 1
    detail = rules[0]["EventPattern"]["detail"]
    assert detail["lastStatus"] == ["STOPPED"]
    assert {"stopCode": ["TaskFailedToStart"]} in detail["$or"]
    assert rules[0]["Targets"][0]["Arn"] == {"Ref": topic_id}


def test_every_log_group_has_a_retention(default_app: Synthesis) -> None:
    for stack in ("data", "serving"):
        groups = resources(default_app.template_json(stack), "AWS::Logs::LogGroup")
        assert groups
        assert all(g["Properties"].get("RetentionInDays") == 30 for g in groups.values())


def test_the_variant_spreads_opensearch_and_redis_over_two_azs(variant_app: Synthesis) -> None:
    data = variant_app.template_json("data")
    _, domain = only(data, "AWS::OpenSearchService::Domain")
    cluster = domain["Properties"]["ClusterConfig"]
    assert cluster["InstanceCount"] == 2 and cluster["ZoneAwarenessEnabled"] is True
    assert len(domain["Properties"]["VPCOptions"]["SubnetIds"]) == 2
    _, cache = only(data, "AWS::ElastiCache::ReplicationGroup")
    assert cache["Properties"]["NumCacheClusters"] == 2
    assert cache["Properties"]["MultiAZEnabled"] is True and cache["Properties"]["AutomaticFailoverEnabled"] is True
    assert len(resources(data, "AWS::EC2::NatGateway")) == 1
    _, task = _indexer_task(data)
    env = {e["Name"]: e["Value"] for e in task["Properties"]["ContainerDefinitions"][0]["Environment"]}
    assert env["RECS_INDEX_REPLICAS"] == "1"
