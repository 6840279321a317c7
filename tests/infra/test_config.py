"""The app's settings: defaults, context parsing, validation naming the key, the model version."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from infra.config import InfraSettings, context_key
from infra.errors import InfraConfigError
from tests.infra.conftest import CDK_JSON


def test_cdk_json_documents_every_setting_with_its_default() -> None:
    context = json.loads(CDK_JSON.read_text())["context"]
    ours = {k: v for k, v in context.items() if not k.startswith("@")}
    optional = {"modelVersion", "lambdaAssetDir", "alarmEmail", "indexerImageUri", "retrainImageUri",
                "retrainSchedule", "retrainArgs"}  # no default value to write down
    assert set(ours) | optional == {context_key(f.name) for f in fields(InfraSettings)}
    defaults = InfraSettings()
    for f in fields(InfraSettings):
        key = context_key(f.name)
        if key in ours:
            assert ours[key] == getattr(defaults, f.name), key


def test_cdk_json_runs_the_app_with_the_project_venv() -> None:
    assert json.loads(CDK_JSON.read_text())["app"] == ".venv/bin/python -m infra.app"


def test_command_line_strings_are_parsed_like_json_values() -> None:
    settings = InfraSettings.from_mapping(
        {"lambdaMemoryMiB": "2048", "tracing": "true", "provisionedConcurrencyTarget": "0.5", "modelVersion": "m"}
    )
    assert settings.lambda_memory_mib == 2048
    assert settings.tracing is True
    assert settings.provisioned_concurrency_target == 0.5


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"lambdaMemoryMiB": "lots"}, "'lambdaMemoryMiB': 'lots' is not an integer"),
        ({"lambdaMemoryMiB": 64}, "'lambdaMemoryMiB': between 128 and 10240"),
        ({"apiAuth": "basic"}, "'apiAuth': one of apiKey, iam"),
        ({"opensearchDataNodes": 3}, "'opensearchDataNodes'"),
        ({"natGateways": 0, "interfaceEndpoints": False}, "'interfaceEndpoints'"),
        ({"provisionedConcurrencyMin": 5, "provisionedConcurrencyMax": 2}, "'provisionedConcurrencyMax'"),
        ({"logRetentionDays": 31}, "'logRetentionDays'"),
        ({"modelVersion": "a/b"}, "'modelVersion'"),
        ({"tracing": "maybe"}, "'tracing': 'maybe' is not a boolean (true/false)"),
        ({"prefix": "Recs"}, "'prefix'"),
        ({"lambdaTimeoutSeconds": 60}, "API Gateway's integration timeout"),
        # the service refuses these at deploy time; synth refuses them first
        ({"opensearchVolumeGiB": 101}, "'opensearchVolumeGiB': between 10 and 100 GiB for t3.small.search"),
        ({"opensearchInstanceType": "r6g.large.search", "opensearchVolumeGiB": 2049}, "between 10 and 2048 GiB"),
        ({"opensearchInstanceType": "i3.large.search"}, "'opensearchInstanceType': not in infra/opensearch_limits.py"),
        ({"opensearchVolumeGiB": 9}, "'opensearchVolumeGiB'"),
        ({"apiGatewayAccountRole": "maybe"}, "'apiGatewayAccountRole': one of create, existing"),
        ({"opensearchServiceLinkedRole": "auto"}, "'opensearchServiceLinkedRole': one of create, existing"),
        ({"apiWafRateLimit": 5}, "'apiWafRateLimit'"),
        ({"indexerImageUri": "docker.io/library/python:3.12"}, "'indexerImageUri': an ECR image"),
        ({"coldStart": "warm"}, "'coldStart': one of none, provisioned, snapstart"),
    ],
)
def test_a_bad_value_is_refused_naming_its_context_key(context: dict[str, object], message: str) -> None:
    with pytest.raises(InfraConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        InfraSettings.from_mapping({"modelVersion": "m", **context})


def test_an_explicit_override_beats_the_context() -> None:
    settings = InfraSettings.from_mapping({"apiAuth": "apiKey", "modelVersion": "m"}, api_auth="iam")
    assert settings.api_auth == "iam"


def test_the_model_version_is_an_optional_pin() -> None:
    # unset: the function follows the live index's model (RECS_BUNDLE is the bundle root)
    assert InfraSettings.from_mapping({}).model_version is None
    assert InfraSettings.from_mapping({"modelVersion": ""}).model_version is None
    assert InfraSettings.from_mapping({"modelVersion": "2025-01-02-abc"}).model_version == "2025-01-02-abc"


def test_derived_names_follow_the_prefix() -> None:
    settings = InfraSettings(prefix="movies", opensearch_data_nodes=2)
    assert (settings.data_stack_name, settings.serving_stack_name) == ("movies-data", "movies-serving")
    assert (settings.function_name, settings.domain_name) == ("movies-recommender", "movies-vectors")
    assert settings.opensearch_replicas == 1
    assert InfraSettings().opensearch_replicas == 0
    assert InfraSettings().lambda_pip_arch == "aarch64"
    assert InfraSettings(lambda_architecture="x86_64").lambda_pip_arch == "x86_64"


def test_a_larger_instance_type_takes_a_larger_volume() -> None:
    assert InfraSettings(opensearch_instance_type="r6g.large.search", opensearch_volume_gib=2048).opensearch_volume_gib
    assert InfraSettings(opensearch_volume_gib=100).opensearch_volume_gib == 100


def test_the_cold_start_strategy_decides_what_is_provisioned() -> None:
    # none is the default (bench.scaling's conclusion, docs/deploy.md "Cold starts"); only provisioned deploys the
    # forecaster, whatever predictiveScaling says (there is no capacity to schedule otherwise)
    assert InfraSettings().cold_start == "none"
    for strategy, provisioned, snapstart in (("none", False, False), ("provisioned", True, False),
                                             ("snapstart", False, True)):
        settings = InfraSettings.from_mapping({"coldStart": strategy, "predictiveScaling": True})
        assert (settings.provisioned, settings.snapstart, settings.forecaster) == (provisioned, snapstart, provisioned)
    assert not InfraSettings.from_mapping({"coldStart": "provisioned", "predictiveScaling": False}).forecaster
