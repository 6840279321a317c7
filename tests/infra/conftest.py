"""Fixtures for the CDK app's tests: each app is synthesized once per session, with cdk-nag on.

``cdk.App()`` does not read ``cdk.json``, so ``cdk_context()`` loads its context (feature flags
and the app's defaults) and the tests add their overrides. Templates are read back from the cloud
assembly written to a temporary directory (the same files ``cdk deploy`` would upload), and the
nag report from ``validation-report.json`` when synthesis failed validation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from infra.app import build_app
from infra.config import REPO_ROOT, InfraSettings
from infra.lambda_asset import lambda_asset_dir

CDK_JSON = REPO_ROOT / "cdk.json"
TEST_MODEL_VERSION = "test-model-1"

VARIANT = {
    "apiAuth": "iam",
    "opensearchDataNodes": 2,
    "redisReplicas": 1,
    "natGateways": 1,
    "endpointAzs": 2,
    "tracing": True,
    "apiExecutionLogs": True,
    "apiQuotaPerDay": 50000,
    "alarmEmail": "ops@example.com",
    "prefix": "recsalt",
    "coldStart": "provisioned",
    "predictiveScaling": False,
    "modelVersion": TEST_MODEL_VERSION,
    "apiWaf": True,
    "apiGatewayAccountRole": "existing",
    "opensearchServiceLinkedRole": "existing",
    "opensearchInstanceType": "m6g.large.search",
    "opensearchVolumeGiB": 100,
    "retrainSchedule": "cron(0 3 ? * SUN *)",
    "retrainCpu": 8192,
    "retrainMemoryMiB": 32768,
    "retrainAlarmAfter": 2,
    "retrainArgs": "--epochs 2 --max-examples-per-user 30 --user-tower=gru",
    "retrainImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/recs-retrain:v1",
}
"""Every switch flipped away from its default: the second app the tests synthesize (the default app has
no ``modelVersion``: its function follows the live index's model from the bundle root). Its cold-start strategy is
``provisioned`` without the forecaster; ``provisioned_app`` is the defaults with ``provisioned`` (and the forecaster),
``snapstart_app`` the defaults with ``snapstart``; the default app is ``none``."""

PROVISIONED = {"coldStart": "provisioned"}
SNAPSTART = {"coldStart": "snapstart"}


def cdk_context(**overrides: Any) -> dict[str, Any]:
    """cdk.json's context plus ``overrides``."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8"))["context"]
    context.update(overrides)
    return context


@dataclass
class Synthesis:
    """One synthesized app: its settings, cloud assembly directory and nag outcome."""

    settings: InfraSettings
    outdir: Path
    error: str | None
    violations: list[dict[str, Any]] = field(default_factory=list)

    def template_json(self, stack: str) -> dict[str, Any]:
        return json.loads((self.outdir / f"{self._name(stack)}.template.json").read_text())  # type: ignore[no-any-return]

    def template(self, stack: str) -> Template:
        return Template.from_json(self.template_json(stack))

    def _name(self, stack: str) -> str:
        return {"data": self.settings.data_stack_name, "serving": self.settings.serving_stack_name}[stack]


def synthesize(outdir: Path, asset_dir: Path, **overrides: Any) -> Synthesis:
    context = cdk_context(lambdaAssetDir=str(asset_dir), **overrides)
    app = App(context=context, outdir=str(outdir))
    build_app(app)
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # jsii surfaces the policy-validation failure as a RuntimeError
        error = str(exc)
    violations: list[dict[str, Any]] = []
    report = outdir / "validation-report.json"
    if report.is_file():
        for plugin in json.loads(report.read_text()).get("pluginReports", []):
            violations += plugin.get("violations", [])
    return Synthesis(InfraSettings.from_mapping(context), outdir, error, violations)


@pytest.fixture(scope="session")
def lambda_asset() -> Path:
    """The real Lambda asset, built (or reused when fresh) exactly as ``cdk synth`` does."""
    return lambda_asset_dir(InfraSettings.from_mapping(cdk_context()))


@pytest.fixture(scope="session")
def default_app(tmp_path_factory: pytest.TempPathFactory, lambda_asset: Path) -> Synthesis:
    return synthesize(tmp_path_factory.mktemp("cdk-default"), lambda_asset)


@pytest.fixture(scope="session")
def variant_app(tmp_path_factory: pytest.TempPathFactory, lambda_asset: Path) -> Synthesis:
    return synthesize(tmp_path_factory.mktemp("cdk-variant"), lambda_asset, **VARIANT)


@pytest.fixture(scope="session")
def provisioned_app(tmp_path_factory: pytest.TempPathFactory, lambda_asset: Path) -> Synthesis:
    """The defaults with ``coldStart=provisioned``: provisioned concurrency, target tracking and the forecaster."""
    return synthesize(tmp_path_factory.mktemp("cdk-provisioned"), lambda_asset, **PROVISIONED)


@pytest.fixture(scope="session")
def snapstart_app(tmp_path_factory: pytest.TempPathFactory, lambda_asset: Path) -> Synthesis:
    """The defaults with ``coldStart=snapstart``."""
    return synthesize(tmp_path_factory.mktemp("cdk-snapstart"), lambda_asset, **SNAPSTART)


ALL_APPS = ["default_app", "variant_app", "provisioned_app", "snapstart_app"]
"""Every synthesized app: each cold-start strategy at least once (none, provisioned with and without the
forecaster, snapstart)."""


@pytest.fixture(scope="session")
def data(default_app: Synthesis) -> dict[str, Any]:
    return default_app.template_json("data")


@pytest.fixture(scope="session")
def serving(default_app: Synthesis) -> dict[str, Any]:
    return default_app.template_json("serving")


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """``{logical id: resource}`` of one type (ids are looked up, never written in a test)."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def only(template: dict[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    found = resources(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def find_by_description(template: dict[str, Any], resource_type: str, text: str, key: str = "GroupDescription") -> str:
    """The logical id of the one resource whose description contains ``text``."""
    hits = [k for k, v in resources(template, resource_type).items() if text in str(v["Properties"].get(key, ""))]
    assert len(hits) == 1, f"expected one {resource_type} described with {text!r}, found {hits}"
    return hits[0]


def cross_stack(data_template: dict[str, Any], value: Any) -> Any:
    """Follow a ``Fn::GetStackOutput`` of the serving stack to the data stack's output value."""
    if isinstance(value, dict) and "Fn::GetStackOutput" in value:
        return data_template["Outputs"][value["Fn::GetStackOutput"]["OutputName"]]["Value"]
    return value


def recommender_function(serving_template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The serving function (the stack also holds the predictive-scaling forecaster)."""
    found = [(k, v) for k, v in resources(serving_template, "AWS::Lambda::Function").items()
             if v["Properties"]["Handler"] == "recommender.handler.lambda_handler"]
    assert len(found) == 1, found
    return found[0]
