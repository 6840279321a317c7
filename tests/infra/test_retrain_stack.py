"""The retraining task in the data stack: its task definition and size, the triggers (uploads under ratings/, the
optional schedule), where the report and failures go, the alarm on runs in a row that published nothing, and the
role's rights (read ratings/ and bundles/, create new objects under bundles/ only, read-only OpenSearch)."""

from __future__ import annotations

import json
from typing import Any

from infra.config import InfraSettings
from infra.errors import InfraConfigError
from tests.infra.conftest import Synthesis, resources

Resources = dict[str, dict[str, Any]]


def _task(data: dict[str, Any], container: str) -> tuple[str, dict[str, Any]]:
    found = [(k, v) for k, v in resources(data, "AWS::ECS::TaskDefinition").items()
             if [c["Name"] for c in v["Properties"]["ContainerDefinitions"]] == [container]]
    assert len(found) == 1, found
    return found[0]


def _role(data: dict[str, Any], description: str) -> str:
    (role,) = [k for k, v in resources(data, "AWS::IAM::Role").items()
               if v["Properties"].get("Description") == description]
    return role


def _statements_of(data: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    return [s for p in resources(data, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _rules_running(data: dict[str, Any], task_id: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources(data, "AWS::Events::Rule").values()
            if any(t.get("EcsParameters", {}).get("TaskDefinitionArn") == {"Ref": task_id}
                   for t in r["Properties"].get("Targets", []))]


def test_the_task_trains_from_the_repository_image_with_the_default_size(default_app: Synthesis) -> None:
    data = default_app.template_json("data")
    _, task = _task(data, "retrain")
    props = task["Properties"]
    assert (props["Cpu"], props["Memory"]) == ("1024", "4096")
    assert props["RuntimePlatform"]["CpuArchitecture"] == "X86_64"
    assert props["TaskRoleArn"] == {"Fn::GetAtt": [_role(data, "retraining task"), "Arn"]}
    (container,) = props["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    bucket = next(k for k, b in resources(data, "AWS::S3::Bucket").items() if "LoggingConfiguration" in b["Properties"])
    assert env["RECS_RETRAIN_DATA"] == {"Fn::Join": ["", ["s3://", {"Ref": bucket}, "/ratings/"]]}
    assert env["RECS_RETRAIN_BUNDLE_ROOT"] == {"Fn::Join": ["", ["s3://", {"Ref": bucket}, "/bundles/"]]}
    topic_id = next(iter(resources(data, "AWS::SNS::Topic")))
    assert env["RECS_RETRAIN_TOPIC_ARN"] == {"Ref": topic_id}
    assert env["RECS_RETRAIN_TOLERANCE"] == "0.005" and env["RECS_RETRAIN_LOCK_WAIT_SECONDS"] == "0"
    assert {"RECS_OPENSEARCH_URL", "RECS_OPENSEARCH_ALIAS", "RECS_REDIS_URL", "RECS_REDIS_AUTH_SECRET_ARN"} <= set(env)
    # the image is built from training/Dockerfile, with a context of core/ and training/ only
    contexts = [p for p in default_app.outdir.glob("asset.*") if (p / "training" / "Dockerfile").is_file()]
    assert len(contexts) == 1
    assert {p.name for p in contexts[0].iterdir()} <= {"training", "core", ".dockerignore"}
    assert not list(contexts[0].rglob("__pycache__"))


def test_the_variant_is_sized_for_32m_and_uses_a_prebuilt_image(variant_app: Synthesis) -> None:
    data = variant_app.template_json("data")
    _, task = _task(data, "retrain")
    assert (task["Properties"]["Cpu"], task["Properties"]["Memory"]) == ("8192", "32768")
    image = json.dumps(task["Properties"]["ContainerDefinitions"][0]["Image"])
    assert "recs-retrain:v1" in image and "123456789012" in image
    assert not [p for p in variant_app.outdir.glob("asset.*") if (p / "training" / "Dockerfile").is_file()]


def test_an_upload_under_ratings_runs_the_task_and_no_schedule_by_default(default_app: Synthesis) -> None:
    data = default_app.template_json("data")
    task_id, _ = _task(data, "retrain")
    (rule,) = _rules_running(data, task_id)
    assert "ScheduleExpression" not in rule
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "ratings/"}]
    (target,) = rule["Targets"]
    assert target["EcsParameters"]["LaunchType"] == "FARGATE"
    assert target["EcsParameters"]["NetworkConfiguration"]["AwsVpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert not [r for r in resources(data, "AWS::Events::Rule").values() if "ScheduleExpression" in r["Properties"]]


def test_the_schedule_runs_the_task_when_set(variant_app: Synthesis) -> None:
    data = variant_app.template_json("data")
    task_id, _ = _task(data, "retrain")
    scheduled = [r for r in _rules_running(data, task_id) if "ScheduleExpression" in r]
    assert [r["ScheduleExpression"] for r in scheduled] == ["cron(0 3 ? * SUN *)"]
    assert "DeadLetterConfig" in scheduled[0]["Targets"][0]


def test_failures_go_to_the_alarm_topic_and_runs_in_a_row_without_a_model_raise_an_alarm(
    default_app: Synthesis, variant_app: Synthesis
) -> None:
    for synthesis, runs in ((default_app, 3), (variant_app, 2)):
        data = synthesis.template_json("data")
        topic_id = next(iter(resources(data, "AWS::SNS::Topic")))
        failure = [r["Properties"] for r in resources(data, "AWS::Events::Rule").values()
                   if r["Properties"].get("EventPattern", {}).get("source") == ["aws.ecs"]
                   and "retrain" in json.dumps(r["Properties"]["EventPattern"])]
        assert len(failure) == 1
        detail = failure[0]["EventPattern"]["detail"]
        assert {"stopCode": ["TaskFailedToStart"]} in detail["$or"]
        assert {"containers": {"name": ["retrain"], "exitCode": [{"anything-but": [0, 3, 4, 75]}]}} in detail["$or"]
        assert failure[0]["Targets"][0]["Arn"] == {"Ref": topic_id}

        (metric_filter,) = resources(data, "AWS::Logs::MetricFilter").values()
        props = metric_filter["Properties"]
        assert props["FilterPattern"] == "{ $.not_published_streak >= 0 }"
        (transformation,) = props["MetricTransformations"]
        assert transformation["MetricValue"] == "$.not_published_streak"
        alarms = [a["Properties"] for a in resources(data, "AWS::CloudWatch::Alarm").values()
                  if a["Properties"].get("MetricName") == transformation["MetricName"]]
        assert len(alarms) == 1
        assert alarms[0]["Threshold"] == runs and alarms[0]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarms[0]["Namespace"] == transformation["MetricNamespace"]
        assert alarms[0]["AlarmActions"] == [{"Ref": topic_id}]


def test_the_role_reads_ratings_and_bundles_and_only_creates_new_bundle_objects(default_app: Synthesis) -> None:
    data = default_app.template_json("data")
    statements = _statements_of(data, _role(data, "retraining task"))
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _list(s["Action"]))]
    by_action = {a: s for s in s3 for a in _list(s["Action"])}
    assert set(by_action) == {"s3:GetObject", "s3:ListBucket", "s3:PutObject"}
    suffix = [r["Fn::Join"][1][-1] for r in _list(by_action["s3:GetObject"]["Resource"])]
    assert sorted(suffix) == ["/bundles/*", "/ratings/*"]
    assert by_action["s3:ListBucket"]["Condition"] == {"StringLike": {"s3:prefix": ["ratings/*", "bundles/*"]}}
    put = by_action["s3:PutObject"]
    assert [r["Fn::Join"][1][-1] for r in _list(put["Resource"])] == ["/bundles/*"]
    assert put["Condition"] == {"Null": {"s3:if-none-match": "false"}}  # a PUT that could replace is denied
    others = {a for s in statements for a in _list(s["Action"]) if not a.startswith("s3:")}
    assert others == {"sns:Publish", "kms:Decrypt", "kms:GenerateDataKey*", "secretsmanager:DescribeSecret",
                      "secretsmanager:GetSecretValue"}


def test_the_role_may_only_read_opensearch(default_app: Synthesis) -> None:
    data = default_app.template_json("data")
    role = _role(data, "retraining task")
    (domain,) = resources(data, "AWS::OpenSearchService::Domain").values()
    actions = {a for s in domain["Properties"]["AccessPolicies"]["Statement"]
               if s["Principal"]["AWS"]["Fn::GetAtt"][0] == role for a in _list(s["Action"])}
    assert actions == {"es:ESHttpGet", "es:ESHttpHead"}


def test_the_report_reaches_sns_from_the_isolated_subnets(default_app: Synthesis) -> None:
    endpoints = [e["Properties"] for e in resources(default_app.template_json("data"), "AWS::EC2::VPCEndpoint").values()
                 if json.dumps(e["Properties"]["ServiceName"]).endswith('".sns"]]}')]
    assert len(endpoints) == 1, "the retraining task publishes its report to SNS from isolated subnets"
    assert endpoints[0]["VpcEndpointType"] == "Interface" and endpoints[0]["PrivateDnsEnabled"] is True


def test_bad_retrain_settings_are_refused_naming_the_key() -> None:
    for context, key in (({"retrainCpu": 1024, "retrainMemoryMiB": 16384}, "retrainMemoryMiB"),
                         ({"retrainCpu": 3000}, "retrainCpu"),
                         ({"retrainSchedule": "every sunday"}, "retrainSchedule"),
                         ({"retrainTolerance": 1.5}, "retrainTolerance"),
                         ({"retrainImageUri": "docker.io/recs:1"}, "retrainImageUri"),
                         ({"retrainArgs": "--epochs two"}, "retrainArgs"),
                         ({"retrainArgs": "--data s3://elsewhere/"}, "retrainArgs"),
                         ({"retrainArgs": "--temperature 50"}, "retrainArgs")):
        try:
            InfraSettings.from_mapping(context)
        except InfraConfigError as exc:
            assert f"'{key}'" in str(exc)
        else:
            raise AssertionError(f"{context} was accepted")
    assert InfraSettings.from_mapping({"retrainCpu": 8192, "retrainMemoryMiB": 32768}).retrain_memory_mib == 32768


def test_retrain_args_become_the_task_command_after_the_entry_point(default_app: Synthesis,
                                                                    variant_app: Synthesis) -> None:
    (container,) = _task(variant_app.template_json("data"), "retrain")[1]["Properties"]["ContainerDefinitions"]
    assert container["Command"] == ["--epochs", "2", "--max-examples-per-user", "30", "--user-tower=gru"]
    (default,) = _task(default_app.template_json("data"), "retrain")[1]["Properties"]["ContainerDefinitions"]
    assert "Command" not in default  # the image's entry point alone: the training defaults
