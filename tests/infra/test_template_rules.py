"""Template rules: one per class of deploy defect, checked on the synthesized templates of every app (the defaults,
the all-switches variant, and the defaults with each other cold-start strategy). Each rule is a function returning
what it found wrong; each is also shown to catch the defect on a copy of a template with the fix taken out (so an
empty answer means something).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from infra.config import InfraSettings
from infra.constructs.clients import READ_ONLY_POST_APIS
from infra.opensearch_limits import volume_limits
from infra.preflight import planned_checks
from tests.infra.conftest import ALL_APPS, Synthesis, resources

APPS = ALL_APPS
Template = dict[str, Any]


def _refs(value: Any) -> Iterator[str]:
    """Logical ids a value refers to (Ref, GetAtt)."""
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            yield value["Ref"]
        if "Fn::GetAtt" in value:
            yield value["Fn::GetAtt"][0]
        for v in value.values():
            yield from _refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _refs(v)


def _depends_on(template: Template, source: str, target: str) -> bool:
    """Whether CloudFormation creates ``target`` before ``source`` (DependsOn, Ref or GetAtt, transitively)."""
    seen, todo = set(), [source]
    while todo:
        current = todo.pop()
        if current in seen or current not in template["Resources"]:
            continue
        seen.add(current)
        resource = template["Resources"][current]
        direct = resource.get("DependsOn", [])
        direct = [direct] if isinstance(direct, str) else direct
        todo += [*direct, *_refs(resource.get("Properties", {}))]
    return target in seen - {source}


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    """A resource ARN's literal parts joined (Fn::Join of strings and references)."""
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(p if isinstance(p, str) else "<ref>" for p in value["Fn::Join"][1])
    return value if isinstance(value, str) else json.dumps(value)


# --- rule 1: access or execution logs need the account's API Gateway CloudWatch role
def rule_logging_stages_have_the_account_role(template: Template, settings: InfraSettings) -> list[str]:
    found = []
    accounts = [k for k, v in resources(template, "AWS::ApiGateway::Account").items()
                if v.get("Properties", {}).get("CloudWatchRoleArn")]
    for stage_id, stage in resources(template, "AWS::ApiGateway::Stage").items():
        props = stage["Properties"]
        logs = "AccessLogSetting" in props or any(
            m.get("LoggingLevel", "OFF") != "OFF" for m in props.get("MethodSettings", []))
        if not logs:
            continue
        if settings.api_gateway_account_role == "existing":
            if "apigateway-account-role" not in planned_checks(settings):
                found.append(f"{stage_id}: logs with an existing account role, but preflight does not check it")
        elif not any(_depends_on(template, stage_id, account) for account in accounts):
            found.append(f"{stage_id}: logs, and the stack sets no API Gateway account role before it")
    return found


# --- rule 2: every alarm action's topic lets CloudWatch publish (topic policy and key policy)
def rule_alarm_topics_accept_cloudwatch(templates: dict[str, Template]) -> list[str]:
    found = []
    for name, template in templates.items():
        for alarm_id, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
            props = alarm["Properties"]
            for action in [*props.get("AlarmActions", []), *props.get("OKActions", [])]:
                owner, topic_id = name, None
                if isinstance(action, dict) and "Fn::GetStackOutput" in action:
                    owner = next(n for n in templates if n != name)
                    action = templates[owner]["Outputs"][action["Fn::GetStackOutput"]["OutputName"]]["Value"]
                topic_id = action.get("Ref") if isinstance(action, dict) else None
                if topic_id is None:
                    found.append(f"{alarm_id}: an action that is not one of the app's topics: {action}")
                    continue
                found += [f"{alarm_id}: {why}" for why in _topic_accepts_cloudwatch(templates[owner], topic_id)]
    return found


def _topic_accepts_cloudwatch(template: Template, topic_id: str) -> list[str]:
    found = []
    policies = [p["Properties"]["PolicyDocument"] for p in resources(template, "AWS::SNS::TopicPolicy").values()
                if {"Ref": topic_id} in p["Properties"]["Topics"]]
    # no topic policy: SNS's default one lets the owning account's services publish
    for document in policies:
        allowed = [s for s in _statements(document) if s["Effect"] == "Allow"
                   and "cloudwatch.amazonaws.com" in _as_list(s.get("Principal", {}).get("Service", []))
                   and "sns:publish" in [a.lower() for a in _as_list(s["Action"])]]
        if not allowed:
            found.append(f"the policy of {topic_id} does not let cloudwatch.amazonaws.com publish")
        elif not any("aws:SourceAccount" in s.get("Condition", {}).get("StringEquals", {}) for s in allowed):
            found.append(f"the policy of {topic_id} lets CloudWatch publish without an aws:SourceAccount condition")
    key = template["Resources"][topic_id]["Properties"].get("KmsMasterKeyId")
    if key is not None:
        key_id = next(iter(_refs(key)), None)
        statements = _statements(template["Resources"].get(key_id, {}).get("Properties", {}).get("KeyPolicy", {}))
        if not any("cloudwatch.amazonaws.com" in _as_list(s.get("Principal", {}).get("Service", []))
                   and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(_as_list(s["Action"])) for s in statements):
            found.append(f"the key of {topic_id} does not let CloudWatch encrypt for it")
    return found


# --- rules 3 and 5: provisioned concurrency belongs to the scalable target; the quota is checked before a deploy
def rule_provisioned_concurrency_is_owned_by_scaling(template: Template, settings: InfraSettings) -> list[str]:
    found = [f"{k}: a static ProvisionedConcurrencyConfig (every code deploy would re-apply it)"
             for k, v in resources(template, "AWS::Lambda::Alias").items()
             if "ProvisionedConcurrencyConfig" in v["Properties"]]
    targets = {k: v for k, v in resources(template, "AWS::ApplicationAutoScaling::ScalableTarget").items()
               if v["Properties"]["ServiceNamespace"] == "lambda"}
    initial = [k for k, v in resources(template, "Custom::AWS").items()
               if "putProvisionedConcurrencyConfig" in json.dumps(v["Properties"].get("Create", ""))]
    for target_id, target in targets.items():
        props = target["Properties"]
        if not props["MinCapacity"] <= props["MaxCapacity"]:
            found.append(f"{target_id}: MinCapacity above MaxCapacity")
        if not any(_depends_on(template, target_id, i) for i in initial):
            found.append(f"{target_id}: nothing allocates the initial provisioned concurrency before it")
    for custom_id in initial:
        if "CurrentVersion" in json.dumps(template["Resources"][custom_id]["Properties"]):
            found.append(f"{custom_id}: depends on the function version, so every code deploy would re-run it")
    if targets and "lambda-concurrency" not in planned_checks(settings):
        found.append("provisioned concurrency is configured but preflight does not check the account's quota")
    return found


# --- rule 4: a VPC domain needs OpenSearch's service-linked role first
def rule_vpc_domains_have_the_service_linked_role(template: Template, settings: InfraSettings) -> list[str]:
    found = []
    roles = {k: v for k, v in resources(template, "AWS::IAM::ServiceLinkedRole").items()
             if v["Properties"]["AWSServiceName"] == "opensearchservice.amazonaws.com"}
    for domain_id, domain in resources(template, "AWS::OpenSearchService::Domain").items():
        if "VPCOptions" not in domain["Properties"]:
            continue
        if settings.opensearch_service_linked_role == "existing":
            if "opensearch-service-linked-role" not in planned_checks(settings):
                found.append(f"{domain_id}: relies on an existing service-linked role that preflight does not check")
            continue
        if not any(_depends_on(template, domain_id, r) for r in roles):
            found.append(f"{domain_id}: in a VPC, and no service-linked role is created before it")
        found += [f"{r}: not retained (it is account-wide)" for r, v in roles.items()
                  if v.get("DeletionPolicy") != "Retain"]
    return found


# --- rule 6: the recommender may not write to OpenSearch
WRITE_VERBS = {"es:eshttpput", "es:eshttpdelete", "es:eshttppatch", "es:*", "es:eshttp*", "*"}


def rule_the_recommender_gets_no_opensearch_write(data: Template) -> list[str]:
    found = []
    role_ids = [k for k, v in resources(data, "AWS::IAM::Role").items()
                if v["Properties"].get("Description") == "recommender function"]
    for domain_id, domain in resources(data, "AWS::OpenSearchService::Domain").items():
        for statement in _statements(domain["Properties"].get("AccessPolicies", {})):
            principals = set(_refs(statement.get("Principal", {})))
            if statement["Effect"] != "Allow" or not principals & set(role_ids):
                continue
            for action in (a.lower() for a in _as_list(statement["Action"])):
                if action in WRITE_VERBS:
                    found.append(f"{domain_id}: the recommender is granted {action}")
                elif action == "es:eshttppost":
                    for resource in map(_text, _as_list(statement["Resource"])):
                        if not resource.endswith(tuple(f"/{api}" for api in READ_ONLY_POST_APIS)):
                            found.append(f"{domain_id}: the recommender may POST to {resource}")
    return found


# --- rule 7: every domain's volume is one its instance type takes
def rule_domain_volumes_within_limits(template: Template) -> list[str]:
    found = []
    for domain_id, domain in resources(template, "AWS::OpenSearchService::Domain").items():
        props = domain["Properties"]
        instance, size = props["ClusterConfig"]["InstanceType"], props["EBSOptions"]["VolumeSize"]
        limits = volume_limits(instance)
        if limits is None or not limits[0] <= size <= limits[1]:
            found.append(f"{domain_id}: {size} GiB on {instance} (limits {limits})")
    return found


# --- rule 8: the stateful parts and the jobs are alarmed, every alarm notifies
def required_alarms(settings: InfraSettings) -> dict[tuple[str, str], int]:
    """``(namespace, metric) -> how many alarms``."""
    nodes = 1 + settings.redis_replicas
    required = {
        ("AWS/ES", "ClusterStatus.red"): 1, ("AWS/ES", "ClusterStatus.yellow"): 1, ("AWS/ES", "FreeStorageSpace"): 1,
        ("AWS/ES", "JVMMemoryPressure"): 1, ("AWS/ES", "ClusterIndexWritesBlocked"): 1,
        ("AWS/ES", "KNNCircuitBreakerTriggered"): 1,
        ("AWS/ElastiCache", "DatabaseMemoryUsagePercentage"): nodes, ("AWS/ElastiCache", "Evictions"): nodes,
        ("AWS/ElastiCache", "EngineCPUUtilization"): nodes,
        ("AWS/Lambda", "Errors"): 1 + int(settings.forecaster),  # the recommender (and the forecaster)
        ("AWS/Lambda", "Throttles"): 1,
        ("AWS/Events", "TriggeredRules"): 1,  # a failed indexer task
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): 1,  # an indexer run that could not start
        ("AWS/ApiGateway", "5XXError"): 1, ("AWS/ApiGateway", "Latency"): 1,
    }
    return required


def rule_stateful_parts_are_alarmed(serving: Template, settings: InfraSettings) -> list[str]:
    counted: dict[tuple[str, str], int] = {}
    found = []
    for alarm_id, alarm in resources(serving, "AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        if not props.get("AlarmActions"):
            found.append(f"{alarm_id}: notifies no one")
        metrics = [props] if "MetricName" in props else [
            m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        for metric in metrics:
            key = (metric["Namespace"], metric["MetricName"])
            counted[key] = counted.get(key, 0) + 1
    for key, count in required_alarms(settings).items():
        if counted.get(key, 0) < count:
            found.append(f"{key[0]} {key[1]}: {counted.get(key, 0)} alarm(s), wanted {count}")
    return found


# --- rule 9: the lock on the API is a choice: IAM, or a key with a WAF, or a key with a warning at synth
def rule_the_api_lock_is_explicit(synthesis: Synthesis) -> list[str]:
    settings, serving = synthesis.settings, synthesis.template_json("serving")
    found = []
    methods = [m["Properties"] for m in resources(serving, "AWS::ApiGateway::Method").values()
               if m["Properties"]["HttpMethod"] != "OPTIONS"]
    if settings.api_auth == "iam" and any(m["AuthorizationType"] != "AWS_IAM" for m in methods):
        found.append("apiAuth=iam, yet a method does not require SigV4")
    if settings.api_waf:
        acls = {k for k, v in resources(serving, "AWS::WAFv2::WebACL").items()
                if any("RateBasedStatement" in r["Statement"] for r in v["Properties"]["Rules"])}
        stages = set(resources(serving, "AWS::ApiGateway::Stage"))
        associations = [a["Properties"] for a in resources(serving, "AWS::WAFv2::WebACLAssociation").values()]
        if not any(set(_refs(a["WebACLArn"])) & acls and set(_refs(a["ResourceArn"])) & stages for a in associations):
            found.append("apiWaf=true, yet no rate-based web ACL is associated with the stage")
    if settings.api_auth == "apiKey" and not settings.api_waf:
        warned = any("recs:api-key-only" in v.get("ruleName", "") for v in synthesis.violations)
        if not warned:
            found.append("an API key is the only lock, and synth did not warn")
    return found


# --- rule 10: the cold-start strategy is what the settings say, and SnapStart only where Lambda supports it
def rule_the_cold_start_strategy_holds(serving: Template, settings: InfraSettings) -> list[str]:
    found = []
    functions = {k: v["Properties"] for k, v in resources(serving, "AWS::Lambda::Function").items()
                 if v["Properties"].get("Handler") == "recommender.handler.lambda_handler"}
    aliases = resources(serving, "AWS::Lambda::Alias")
    targets = [k for k, v in resources(serving, "AWS::ApplicationAutoScaling::ScalableTarget").items()
               if v["Properties"]["ServiceNamespace"] == "lambda"]
    allocations = [k for k, v in resources(serving, "Custom::AWS").items()
                   if "putProvisionedConcurrencyConfig" in json.dumps(v["Properties"].get("Create", ""))]
    static = [k for k, v in aliases.items() if "ProvisionedConcurrencyConfig" in v["Properties"]]
    provisioned = bool(targets or allocations or static)
    if settings.provisioned and not targets:
        found.append("coldStart=provisioned, yet no scalable target owns the alias' provisioned concurrency")
    if not settings.provisioned and provisioned:
        found.append(f"coldStart={settings.cold_start}, yet provisioned concurrency is configured: "
                     f"{sorted([*targets, *allocations, *static])}")
    for function_id, props in functions.items():
        snap = props.get("SnapStart", {}).get("ApplyOn", "None") == "PublishedVersions"
        if snap != settings.snapstart:
            found.append(f"{function_id}: SnapStart {'on' if snap else 'off'} with coldStart={settings.cold_start}")
        if snap:
            # SnapStart is not supported with provisioned concurrency, EFS or ephemeral storage above 512 MB
            if provisioned:
                found.append(f"{function_id}: SnapStart together with provisioned concurrency")
            if props.get("FileSystemConfigs"):
                found.append(f"{function_id}: SnapStart with EFS")
            if props.get("EphemeralStorage", {}).get("Size", 512) > 512:
                found.append(f"{function_id}: SnapStart with more than 512 MB of ephemeral storage")
    for alias_id, alias in aliases.items():
        version = alias["Properties"].get("FunctionVersion")
        target = version["Fn::GetAtt"][0] if isinstance(version, dict) and "Fn::GetAtt" in version else None
        if target is None or serving["Resources"].get(target, {}).get("Type") != "AWS::Lambda::Version":
            found.append(f"{alias_id}: not on a published version of the stack ({version})")
    return found


# --- the rules on every app
@pytest.mark.parametrize("app", APPS)
def test_logging_stages_have_the_account_role(app: str, request) -> None:
    synthesis: Synthesis = request.getfixturevalue(app)
    assert rule_logging_stages_have_the_account_role(synthesis.template_json("serving"), synthesis.settings) == []


@pytest.mark.parametrize("app", APPS)
def test_alarm_topics_accept_cloudwatch(app: str, request) -> None:
    synthesis: Synthesis = request.getfixturevalue(app)
    templates = {"serving": synthesis.template_json("serving"), "data": synthesis.template_json("data")}
    assert rule_alarm_topics_accept_cloudwatch(templates) == []


@pytest.mark.parametrize("app", APPS)
def test_provisioned_concurrency_is_owned_by_scaling(app: str, request) -> None:
    synthesis: Synthesis = request.getfixturevalue(app)
    assert rule_provisioned_concurrency_is_owned_by_scaling(synthesis.template_json("serving"),
                                                            synthesis.settings) == []


@pytest.mark.parametrize("app", APPS)
def test_vpc_domains_have_the_service_linked_role(app: str, request) -> None:
    synthesis: Synthesis = request.getfixturevalue(app)
    assert rule_vpc_domains_have_the_service_linked_role(synthesis.template_json("data"), synthesis.settings) == []


@pytest.mark.parametrize("app", APPS)
def test_the_recommender_gets_no_opensearch_write(app: str, request) -> None:
    synthesis: Synthesis = request.getfixturevalue(app)
    assert rule_the_recommender_gets_no_opensearch_write(synthesis.template_json("data")) == []


@pytest.mark.parametrize("app", APPS)
def test_domain_volumes_within_limits(app: str, request) -> None:
    synthesis: Synthesis = request.getfixturevalue(app)
    assert rule_domain_volumes_within_limits(synthesis.template_json("data")) == []


@pytest.mark.parametrize("app", APPS)
def test_stateful_parts_are_alarmed(app: str, request) -> None:
    synthesis: Synthesis = request.getfixturevalue(app)
    assert rule_stateful_parts_are_alarmed(synthesis.template_json("serving"), synthesis.settings) == []


@pytest.mark.parametrize("app", APPS)
def test_the_api_lock_is_explicit(app: str, request) -> None:
    assert rule_the_api_lock_is_explicit(request.getfixturevalue(app)) == []


@pytest.mark.parametrize("app", APPS)
def test_the_cold_start_strategy_holds(app: str, request) -> None:
    synthesis: Synthesis = request.getfixturevalue(app)
    assert rule_the_cold_start_strategy_holds(synthesis.template_json("serving"), synthesis.settings) == []


# --- each rule catches its defect
def _first(template: Template, resource_type: str) -> dict[str, Any]:
    return next(iter(resources(template, resource_type).values()))


def test_rule_1_catches_a_stage_without_the_account_role(default_app: Synthesis) -> None:
    serving = copy.deepcopy(default_app.template_json("serving"))
    for account in resources(serving, "AWS::ApiGateway::Account"):
        del serving["Resources"][account]
    assert rule_logging_stages_have_the_account_role(serving, default_app.settings)


def test_rule_2_catches_a_topic_policy_without_cloudwatch(default_app: Synthesis) -> None:
    data = copy.deepcopy(default_app.template_json("data"))
    document = _first(data, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]
    document["Statement"] = [s for s in document["Statement"] if s.get("Sid") != "CloudWatchAlarmsPublish"]
    assert rule_alarm_topics_accept_cloudwatch({"serving": default_app.template_json("serving"), "data": data})


def test_rule_3_catches_a_static_alias_value(default_app: Synthesis) -> None:
    serving = copy.deepcopy(default_app.template_json("serving"))
    _first(serving, "AWS::Lambda::Alias")["Properties"]["ProvisionedConcurrencyConfig"] = {
        "ProvisionedConcurrentExecutions": 1}
    assert rule_provisioned_concurrency_is_owned_by_scaling(serving, default_app.settings)


def test_rule_4_catches_a_domain_without_the_role(default_app: Synthesis) -> None:
    data = copy.deepcopy(default_app.template_json("data"))
    for role in resources(data, "AWS::IAM::ServiceLinkedRole"):
        del data["Resources"][role]
    assert rule_vpc_domains_have_the_service_linked_role(data, default_app.settings)


def test_rule_6_catches_post_on_every_path(default_app: Synthesis) -> None:
    data = copy.deepcopy(default_app.template_json("data"))
    statements = _first(data, "AWS::OpenSearchService::Domain")["Properties"]["AccessPolicies"]["Statement"]
    statements[0]["Action"] = [*statements[0]["Action"], "es:ESHttpPost"]  # GET/HEAD's statement is on domain/*
    assert rule_the_recommender_gets_no_opensearch_write(data)


def test_rule_7_catches_an_oversized_volume(default_app: Synthesis) -> None:
    data = copy.deepcopy(default_app.template_json("data"))
    _first(data, "AWS::OpenSearchService::Domain")["Properties"]["EBSOptions"]["VolumeSize"] = 200
    assert rule_domain_volumes_within_limits(data)


def test_rule_8_catches_a_missing_alarm(default_app: Synthesis) -> None:
    serving = copy.deepcopy(default_app.template_json("serving"))
    for alarm_id, alarm in resources(serving, "AWS::CloudWatch::Alarm").items():
        if alarm["Properties"].get("MetricName") == "FreeStorageSpace":
            del serving["Resources"][alarm_id]
    assert rule_stateful_parts_are_alarmed(serving, default_app.settings)


def test_rule_9_catches_a_silent_api_key(default_app: Synthesis) -> None:
    silent = copy.copy(default_app)
    silent.violations = []
    assert rule_the_api_lock_is_explicit(silent)


def test_rule_10_catches_provisioned_concurrency_next_to_snapstart(
    snapstart_app: Synthesis, provisioned_app: Synthesis
) -> None:
    serving = copy.deepcopy(snapstart_app.template_json("serving"))
    target_id, target = next(iter(resources(provisioned_app.template_json("serving"),
                                            "AWS::ApplicationAutoScaling::ScalableTarget").items()))
    serving["Resources"][target_id] = target
    found = rule_the_cold_start_strategy_holds(serving, snapstart_app.settings)
    assert any("SnapStart together with provisioned concurrency" in f for f in found), found


def test_rule_10_catches_snapstart_with_a_large_tmp_and_an_alias_on_latest(snapstart_app: Synthesis) -> None:
    serving = copy.deepcopy(snapstart_app.template_json("serving"))
    function = next(v for v in resources(serving, "AWS::Lambda::Function").values()
                    if v["Properties"]["Handler"] == "recommender.handler.lambda_handler")
    function["Properties"]["EphemeralStorage"] = {"Size": 1024}
    _first(serving, "AWS::Lambda::Alias")["Properties"]["FunctionVersion"] = "$LATEST"
    found = rule_the_cold_start_strategy_holds(serving, snapstart_app.settings)
    assert any("512 MB" in f for f in found) and any("not on a published version" in f for f in found), found


def test_rule_10_catches_a_forgotten_strategy(default_app: Synthesis, provisioned_app: Synthesis) -> None:
    # the template of one strategy judged against the settings of another
    assert rule_the_cold_start_strategy_holds(provisioned_app.template_json("serving"), default_app.settings)
    assert rule_the_cold_start_strategy_holds(default_app.template_json("serving"), provisioned_app.settings)
