"""The serving tier: the Lambda and its asset, the live alias and its scaling, the API, the alarms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Match

from tests.infra.conftest import TEST_MODEL_VERSION, Synthesis, cross_stack, only, recommender_function, resources

FORBIDDEN_IN_ASSET = ("tensorflow", "keras", "pandas", "scipy", "torch", "training")


def test_the_function_runs_the_recommender_on_python_312(default_app: Synthesis) -> None:
    default_app.template("serving").resource_properties_count_is("AWS::Lambda::Function", {
        "Runtime": "python3.12",
        "Handler": "recommender.handler.lambda_handler",
        "Architectures": ["arm64"],
        "MemorySize": 1024,
        "Timeout": 10,
        "FunctionName": "recs-recommender",
        "VpcConfig": Match.object_like({"SubnetIds": Match.any_value()}),
    }, 1)


def test_the_function_environment_points_at_the_data_tier(data: dict[str, Any], serving: dict[str, Any]) -> None:
    _, function = recommender_function(serving)
    env = function["Properties"]["Environment"]["Variables"]
    assert set(env) == {"RECS_BUNDLE", "RECS_OPENSEARCH_URL", "RECS_OPENSEARCH_ALIAS", "RECS_REDIS_URL",
                        "RECS_REDIS_AUTH_SECRET_ARN", "OPENBLAS_NUM_THREADS", "POWERTOOLS_TRACE_DISABLED"}
    assert env["RECS_OPENSEARCH_ALIAS"] == "movies"
    assert env["OPENBLAS_NUM_THREADS"] == "1"  # set before numpy's import: the code sets nothing
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"  # tracing off: no Tracer, no X-Ray SDK import at a cold start

    # the bundle ROOT (trailing slash): the function serves the bundle of the live index's model
    scheme, bucket, path = env["RECS_BUNDLE"]["Fn::Join"][1]
    assert (scheme, path) == ("s3://", "/bundles/")
    bucket_ref = cross_stack(data, bucket)["Ref"]
    assert data["Resources"][bucket_ref]["Type"] == "AWS::S3::Bucket"

    scheme, endpoint = env["RECS_OPENSEARCH_URL"]["Fn::Join"][1]
    domain_id, attribute = cross_stack(data, endpoint)["Fn::GetAtt"]
    assert (scheme, data["Resources"][domain_id]["Type"], attribute) == (
        "https://", "AWS::OpenSearchService::Domain", "DomainEndpoint")

    scheme, address, colon, port = env["RECS_REDIS_URL"]["Fn::Join"][1]
    assert (scheme, colon) == ("rediss://", ":")
    assert cross_stack(data, address)["Fn::GetAtt"][1] == "PrimaryEndPoint.Address"
    assert cross_stack(data, port)["Fn::GetAtt"][1] == "PrimaryEndPoint.Port"

    secret_id = cross_stack(data, env["RECS_REDIS_AUTH_SECRET_ARN"])["Ref"]
    assert data["Resources"][secret_id]["Type"] == "AWS::SecretsManager::Secret"


def test_the_lambda_asset_is_the_recommender_without_tensorflow(
    default_app: Synthesis, serving: dict[str, Any]
) -> None:
    _, function = recommender_function(serving)
    asset_hash = function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    asset = default_app.outdir / f"asset.{asset_hash}"
    assert (asset / "recommender" / "handler.py").is_file()
    top_level = {p.name.lower().split("-")[0].split(".")[0] for p in asset.iterdir()}
    assert not top_level & set(FORBIDDEN_IN_ASSET), sorted(top_level & set(FORBIDDEN_IN_ASSET))
    assert not any(p.name == "tensorflow" for p in asset.rglob("tensorflow"))
    assert "numpy" in top_level


def test_the_live_alias_has_provisioned_concurrency_and_a_scalable_target(provisioned_app: Synthesis) -> None:
    serving = provisioned_app.template_json("serving")
    function_id, _ = recommender_function(serving)
    alias_id, alias = only(serving, "AWS::Lambda::Alias")
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionName"] == {"Ref": function_id}
    # no static value on the alias (a code deploy would re-apply it): the scalable target owns it
    assert "ProvisionedConcurrencyConfig" not in alias["Properties"]

    target_id, target = only(serving, "AWS::ApplicationAutoScaling::ScalableTarget")
    props = target["Properties"]
    assert props["ServiceNamespace"] == "lambda"
    assert props["ScalableDimension"] == "lambda:function:ProvisionedConcurrency"
    assert props["ResourceId"] == {"Fn::Join": ["", ["function:", {"Ref": function_id}, ":live"]]}
    assert (props["MinCapacity"], props["MaxCapacity"]) == (1, 10)
    assert alias_id in target.get("DependsOn", [])
    initial_id, initial = only(serving, "Custom::AWS")
    assert initial_id in target["DependsOn"]
    parts = initial["Properties"]["Create"]["Fn::Join"][1]
    create = json.loads("".join(p if isinstance(p, str) else "fn" for p in parts))
    assert (create["action"], create["parameters"]["Qualifier"]) == ("putProvisionedConcurrencyConfig", "live")
    assert create["parameters"]["ProvisionedConcurrentExecutions"] == 1
    # leaving the strategy (a deploy with coldStart=none) deletes the allocation the stack no longer owns
    parts = initial["Properties"]["Delete"]["Fn::Join"][1]
    delete = json.loads("".join(p if isinstance(p, str) else "fn" for p in parts))
    assert (delete["action"], delete["parameters"]["Qualifier"]) == ("deleteProvisionedConcurrencyConfig", "live")
    assert "ProvisionedConcurrencyConfigNotFoundException" in delete["ignoreErrorCodesMatching"]

    provisioned_app.template("serving").has_resource_properties("AWS::ApplicationAutoScaling::ScalingPolicy", {
        "PolicyType": "TargetTrackingScaling",
        "ScalingTargetId": {"Ref": target_id},
        "TargetTrackingScalingPolicyConfiguration": Match.object_like({
            "PredefinedMetricSpecification": {"PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"},
            "TargetValue": 0.7,
        }),
    })


def test_the_forecaster_schedules_the_alias_capacity_hourly(provisioned_app: Synthesis) -> None:
    serving = provisioned_app.template_json("serving")
    function_id, _ = recommender_function(serving)
    forecasters = [f["Properties"] for f in resources(serving, "AWS::Lambda::Function").values()
                   if f["Properties"]["Handler"] == "scaling.lambda_handler.handler"]
    assert len(forecasters) == 1
    env = forecasters[0]["Environment"]["Variables"]
    resource_id = {"Fn::Join": ["", ["function:", {"Ref": function_id}, ":live"]]}
    assert env["RECS_SCALING_RESOURCE_ID"] == resource_id
    assert (env["RECS_SCALING_MIN_CAPACITY"], env["RECS_SCALING_MAX_CAPACITY"]) == ("1", "10")
    assert env["RECS_SCALING_DRY_RUN"] == "false"
    schedules = [r["Properties"] for r in resources(serving, "AWS::Events::Rule").values()
                 if "ScheduleExpression" in r["Properties"]]
    assert [s["ScheduleExpression"] for s in schedules] == ["cron(5 * * * ? *)"]
    _, target = only(serving, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert {"Key": "recs:predictive-scaling", "Value": resource_id} in target["Properties"]["Tags"]


def test_predictive_scaling_can_be_left_out(variant_app: Synthesis) -> None:
    serving = variant_app.template_json("serving")
    handlers = {f["Properties"]["Handler"] for f in resources(serving, "AWS::Lambda::Function").values()}
    # the recommender, and CDK's provider of the custom resource setting the initial provisioned concurrency
    assert handlers == {"recommender.handler.lambda_handler", "index.handler"}
    only(serving, "AWS::ApplicationAutoScaling::ScalableTarget")


def _no_provisioned_concurrency_anywhere(serving: dict[str, Any]) -> None:
    """No scalable target, no allocation, no static value on the alias, no forecaster and no alarm or graph of it."""
    assert not resources(serving, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert not resources(serving, "AWS::ApplicationAutoScaling::ScalingPolicy")
    assert not resources(serving, "AWS::ApplicationAutoScaling::ScheduledAction")
    assert not resources(serving, "Custom::AWS")  # the initial allocation (putProvisionedConcurrencyConfig)
    assert "ProvisionedConcurrency" not in json.dumps(serving["Resources"])  # alias config, metrics, dashboard
    handlers = {f["Properties"]["Handler"] for f in resources(serving, "AWS::Lambda::Function").values()}
    assert handlers == {"recommender.handler.lambda_handler"}  # no forecaster, no custom-resource provider
    assert not [r for r in resources(serving, "AWS::Events::Rule").values() if "ScheduleExpression" in r["Properties"]]
    described = " | ".join(a["Properties"]["AlarmDescription"] for a in resources(serving, "AWS::CloudWatch::Alarm")
                           .values())
    assert "forecaster" not in described and "recommender function failed" in described


def _live_alias_on_a_published_version(serving: dict[str, Any]) -> dict[str, Any]:
    """The ``live`` alias' version: a published ``AWS::Lambda::Version`` of the recommender (never $LATEST)."""
    function_id, _ = recommender_function(serving)
    _, alias = only(serving, "AWS::Lambda::Alias")
    assert alias["Properties"]["Name"] == "live"
    version_id, attribute = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"]
    version = serving["Resources"][version_id]
    assert (version["Type"], attribute) == ("AWS::Lambda::Version", "Version")
    assert version["Properties"]["FunctionName"] == {"Ref": function_id}
    return version


def test_cold_start_none_is_the_default_and_provisions_nothing(default_app: Synthesis) -> None:
    serving = default_app.template_json("serving")
    assert default_app.settings.cold_start == "none"
    _, function = recommender_function(serving)
    assert "SnapStart" not in function["Properties"]
    _live_alias_on_a_published_version(serving)
    _no_provisioned_concurrency_anywhere(serving)
    assert "on demand" in serving["Description"]


def test_cold_start_snapstart_snapshots_the_published_version_behind_live(snapstart_app: Synthesis) -> None:
    serving = snapstart_app.template_json("serving")
    _, function = recommender_function(serving)
    props = function["Properties"]
    assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    # what SnapStart cannot be combined with: EFS, more than 512 MB of /tmp, provisioned concurrency
    assert "FileSystemConfigs" not in props
    assert props.get("EphemeralStorage", {"Size": 512})["Size"] <= 512
    _live_alias_on_a_published_version(serving)
    _no_provisioned_concurrency_anywhere(serving)
    assert props["Runtime"] == "python3.12"  # SnapStart for Python starts at 3.12
    assert "SnapStart" in serving["Description"]
    # CDK's reminder that SnapStart needs a published version is answered (the alias is one), not left as a finding
    assert [v["ruleName"] for v in snapstart_app.violations] == ["Annotation::recs:api-key-only"]


def test_the_cold_start_strategy_changes_only_the_serving_stack(
    default_app: Synthesis, provisioned_app: Synthesis, snapstart_app: Synthesis
) -> None:
    data = default_app.template_json("data")
    assert provisioned_app.template_json("data") == data
    assert snapstart_app.template_json("data") == data


def test_the_api_invokes_the_alias_and_requires_a_key_with_a_usage_plan(serving: dict[str, Any]) -> None:
    alias_id, _ = only(serving, "AWS::Lambda::Alias")
    methods = {k: m for k, m in resources(serving, "AWS::ApiGateway::Method").items()
               if m["Properties"]["HttpMethod"] != "OPTIONS"}
    assert len(methods) == 6
    for method in methods.values():
        props = method["Properties"]
        assert props["ApiKeyRequired"] is True
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert {"Ref": alias_id} in props["Integration"]["Uri"]["Fn::Join"][1]
    permissions = [p["Properties"] for p in resources(serving, "AWS::Lambda::Permission").values()
                   if p["Properties"]["Principal"] == "apigateway.amazonaws.com"]
    assert len(permissions) == 6 and all(p["FunctionName"] == {"Ref": alias_id} for p in permissions)

    _, plan = only(serving, "AWS::ApiGateway::UsagePlan")
    assert plan["Properties"]["Throttle"] == {"RateLimit": 100, "BurstLimit": 200}
    _, key_link = only(serving, "AWS::ApiGateway::UsagePlanKey")
    key_id, _ = only(serving, "AWS::ApiGateway::ApiKey")
    assert key_link["Properties"]["KeyId"] == {"Ref": key_id}


def test_the_api_validates_bodies_throttles_and_logs_access(default_app: Synthesis, serving: dict[str, Any]) -> None:
    validator_id, validator = only(serving, "AWS::ApiGateway::RequestValidator")
    assert validator["Properties"]["ValidateRequestBody"] is True
    post = [m["Properties"] for m in resources(serving, "AWS::ApiGateway::Method").values()
            if m["Properties"]["HttpMethod"] == "POST"]
    assert len(post) == 1
    assert post[0]["RequestValidatorId"] == {"Ref": validator_id}
    model_id, model = only(serving, "AWS::ApiGateway::Model")
    assert post[0]["RequestModels"] == {"application/json": {"Ref": model_id}}
    schema = model["Properties"]["Schema"]
    assert schema["properties"]["k"] == {"type": "integer", "minimum": 1, "maximum": 100}
    assert schema["properties"]["history"]["maxItems"] == 500

    default_app.template("serving").has_resource_properties("AWS::ApiGateway::Stage", {
        "StageName": "v1",
        "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value(),
                                               "Format": Match.string_like_regexp("validationError")}),
        "MethodSettings": Match.array_with([Match.object_like({
            "HttpMethod": "*", "ResourcePath": "/*", "ThrottlingRateLimit": 100, "ThrottlingBurstLimit": 200,
        })]),
    })
    default_app.template("serving").has_resource_properties("AWS::ApiGateway::GatewayResponse", {
        "ResponseType": "BAD_REQUEST_BODY", "StatusCode": "422",
    })
    account_id, _ = only(serving, "AWS::ApiGateway::Account")  # access logs need the account-wide role
    stage_id = next(iter(resources(serving, "AWS::ApiGateway::Stage")))
    assert account_id in serving["Resources"][stage_id]["DependsOn"]
    assert serving["Resources"][account_id]["DeletionPolicy"] == "Retain"


def test_cors_preflights_need_no_credentials_and_gateway_errors_allow_any_origin(serving: dict[str, Any]) -> None:
    # the try-it page on another origin: OPTIONS on every resource, answered by the gateway itself
    all_methods = resources(serving, "AWS::ApiGateway::Method").values()
    preflights = [m["Properties"] for m in all_methods if m["Properties"]["HttpMethod"] == "OPTIONS"]
    resource_count = len(resources(serving, "AWS::ApiGateway::Resource")) + 1  # and the root
    assert len(preflights) == resource_count
    for props in preflights:
        assert props["AuthorizationType"] == "NONE" and props.get("ApiKeyRequired") in (None, False)
        assert props["Integration"]["Type"] == "MOCK"
        headers = props["Integration"]["IntegrationResponses"][0]["ResponseParameters"]
        assert headers["method.response.header.Access-Control-Allow-Origin"] == "'*'"
        assert "X-Api-Key" in headers["method.response.header.Access-Control-Allow-Headers"]
    for response in resources(serving, "AWS::ApiGateway::GatewayResponse").values():
        parameters = response["Properties"]["ResponseParameters"]
        assert parameters["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'"
    search = [m["Properties"] for m in all_methods if m["Properties"]["HttpMethod"] == "GET"
              and "method.request.querystring.q" in m["Properties"].get("RequestParameters", {})]
    assert len(search) == 1


def test_iam_auth_replaces_the_api_key_when_chosen(variant_app: Synthesis) -> None:
    serving = variant_app.template_json("serving")
    methods = [m for m in resources(serving, "AWS::ApiGateway::Method").values()
               if m["Properties"]["HttpMethod"] != "OPTIONS"]
    assert {m["Properties"]["AuthorizationType"] for m in methods} == {"AWS_IAM"}
    assert not any(m["Properties"].get("ApiKeyRequired") for m in methods)
    assert not resources(serving, "AWS::ApiGateway::ApiKey")
    assert not resources(serving, "AWS::ApiGateway::UsagePlan")
    assert "ApiKeyId" not in serving["Outputs"]
    _, function = recommender_function(serving)
    assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}
    assert "POWERTOOLS_TRACE_DISABLED" not in function["Properties"]["Environment"]["Variables"]
    assert function["Properties"]["FunctionName"] == "recsalt-recommender"


def test_alarms_cover_errors_latency_throttles_and_the_indexer(provisioned_app: Synthesis) -> None:
    serving = provisioned_app.template_json("serving")
    data = provisioned_app.template_json("data")
    alarms = resources(serving, "AWS::CloudWatch::Alarm")
    described = " | ".join(a["Properties"]["AlarmDescription"] for a in alarms.values())
    for topic in ("5xx", "p99 latency", "throttled", "red", "yellow", "free", "blocking writes", "k-NN",
                  "Redis node", "recommender function failed", "forecaster failed", "indexer task stopped",
                  "could not start the indexer"):
        assert topic in described
    topic_id, _ = only(data, "AWS::SNS::Topic")
    for alarm in alarms.values():
        (action,) = alarm["Properties"]["AlarmActions"]
        assert cross_stack(data, action) == {"Ref": topic_id}
    only(serving, "AWS::CloudWatch::Dashboard")


def test_a_model_version_pin_names_one_bundle(variant_app: Synthesis) -> None:
    _, function = recommender_function(variant_app.template_json("serving"))
    _, _, path = function["Properties"]["Environment"]["Variables"]["RECS_BUNDLE"]["Fn::Join"][1]
    assert path == f"/bundles/{TEST_MODEL_VERSION}"
    assert variant_app.template_json("serving")["Outputs"]["ModelVersion"]["Value"] == TEST_MODEL_VERSION


def test_outputs_tell_the_operator_where_things_are(default_app: Synthesis, provisioned_app: Synthesis) -> None:
    outputs = set(default_app.template_json("serving")["Outputs"])
    assert {"ApiUrl", "ApiKeyId", "FunctionName"} <= outputs
    assert "ScalableTargetResourceId" not in outputs  # coldStart=none: there is no scalable target
    assert "ScalableTargetResourceId" in provisioned_app.template_json("serving")["Outputs"]
    assert "ModelVersion" not in outputs  # no pin: the model is the live index's (/health names it)
    assert {"BundleBucketName", "OpenSearchEndpoint", "RedisEndpoint", "AlarmTopicArn"} <= set(
        default_app.template_json("data")["Outputs"]
    )


def test_the_indexer_image_context_holds_what_the_dockerfile_copies_and_little_else(default_app: Synthesis) -> None:
    contexts = [p for p in default_app.outdir.glob("asset.*") if (p / "indexer" / "Dockerfile").is_file()]
    assert len(contexts) == 1
    context = contexts[0]
    assert {p.name for p in context.iterdir()} <= {"indexer", "core", ".dockerignore"}
    assert not list(context.rglob("__pycache__"))
    copies = [line.split()[1:] for line in (context / "indexer" / "Dockerfile").read_text().splitlines()
              if line.startswith(("COPY ", "ADD "))]
    assert copies
    for words in copies:
        sources = [w for w in words[:-1] if not w.startswith("--")]
        for source in sources:
            assert (context / source).exists(), f"the Dockerfile copies {source}, missing from the build context"


def test_synth_needs_no_account(default_app: Synthesis) -> None:
    manifest = (default_app.outdir / "manifest.json").read_text()
    assert "unknown-account/unknown-region" in manifest
    assert not list(Path(default_app.outdir).glob("*.context.json"))
