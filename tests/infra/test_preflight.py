"""``recs deploy preflight``: each check passes and fails on botocore's Stubber (the real clients, answers given),
and the command exits 1 on any failure. No network, no credentials."""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from infra.cli import _preflight
from infra.config import InfraSettings
from infra.preflight import (
    BOOTSTRAP_VERSION_PARAMETER,
    CHECK_NAMES,
    MIN_BOOTSTRAP_VERSION,
    CheckResult,
    Preflight,
    planned_checks,
    report,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
SLR = "AWSServiceRoleForAmazonOpenSearchService"
IDENTITY = {"UserId": "x", "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/deployer"}


class StubSession:
    """A boto3-like session whose clients are real botocore clients behind Stubbers (no request leaves)."""

    def __init__(self, region: str | None = REGION) -> None:
        self.region_name = region
        self._botocore = botocore.session.get_session()
        self.clients: dict[str, Any] = {}
        self.stubbers: dict[str, Stubber] = {}

    def client(self, name: str) -> Any:
        if name not in self.clients:
            client = self._botocore.create_client(name, region_name=self.region_name or REGION,
                                                  aws_access_key_id="testing", aws_secret_access_key="testing")
            stubber = Stubber(client)
            stubber.activate()
            self.clients[name], self.stubbers[name] = client, stubber
        return self.clients[name]

    def stub(self, name: str) -> Stubber:
        self.client(name)
        return self.stubbers[name]

    def done(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


def preflight(session: StubSession, run_code: int = 0, docker: str | None = "/usr/bin/docker", **settings: Any):
    commands: list[list[str]] = []

    def run(command: Any) -> int:
        commands.append(list(command))
        return run_code

    return Preflight(session, InfraSettings(**settings), run=run, which=lambda name: docker), commands


def role(name: str) -> dict[str, Any]:
    return {"Role": {"Path": "/", "RoleName": name, "RoleId": "AROAEXAMPLEEXAMPLE01", "Arn":
                     f"arn:aws:iam::{ACCOUNT}:role/{name}", "CreateDate": datetime.datetime(2024, 1, 1)}}


# --- credentials
def test_credentials_pass_with_an_identity_and_a_region() -> None:
    session = StubSession()
    session.stub("sts").add_response("get_caller_identity", {"UserId": "x", "Account": ACCOUNT,
                                                             "Arn": f"arn:aws:iam::{ACCOUNT}:user/deployer"})
    result = preflight(session)[0].credentials()
    assert result.ok and ACCOUNT in result.detail and REGION in result.detail


def test_credentials_fail_when_sts_refuses() -> None:
    session = StubSession()
    session.stub("sts").add_client_error("get_caller_identity", "InvalidClientTokenId", "bad token", 403)
    result = preflight(session)[0].credentials()
    assert not result.ok and "aws configure" in result.fix


def test_credentials_fail_without_a_region() -> None:
    session = StubSession(region=None)
    session.stub("sts").add_response("get_caller_identity", IDENTITY)
    result = preflight(session)[0].credentials()
    assert not result.ok and "AWS_REGION" in result.fix


def test_nothing_else_is_asked_without_credentials() -> None:
    session = StubSession()
    session.stub("sts").add_client_error("get_caller_identity", "ExpiredToken", "expired", 403)
    results = preflight(session)[0].run_all()
    assert [r.name for r in results] == ["credentials"] and not results[0].ok
    session.done()


# --- CDK bootstrap
def _bootstrap(session: StubSession, status: str = "UPDATE_COMPLETE", version: int | None = 21) -> None:
    session.stub("cloudformation").add_response("describe_stacks", {"Stacks": [{
        "StackName": "CDKToolkit", "StackStatus": status, "CreationTime": datetime.datetime(2024, 1, 1)}]},
        {"StackName": "CDKToolkit"})
    if version is not None:
        session.stub("ssm").add_response("get_parameter", {"Parameter": {"Name": BOOTSTRAP_VERSION_PARAMETER,
                                                                         "Value": str(version)}},
                                         {"Name": BOOTSTRAP_VERSION_PARAMETER})


def test_bootstrap_passes_when_recent_enough() -> None:
    session = StubSession()
    _bootstrap(session)
    assert preflight(session)[0].cdk_bootstrap().ok
    session.done()


def test_bootstrap_fails_when_missing() -> None:
    session = StubSession()
    session.stub("cloudformation").add_client_error("describe_stacks", "ValidationError",
                                                    "Stack with id CDKToolkit does not exist", 400)
    result = preflight(session)[0].cdk_bootstrap()
    assert not result.ok and "cdk bootstrap" in result.fix


def test_bootstrap_fails_when_too_old() -> None:
    session = StubSession()
    _bootstrap(session, version=MIN_BOOTSTRAP_VERSION - 1)
    result = preflight(session)[0].cdk_bootstrap()
    assert not result.ok and f"needs {MIN_BOOTSTRAP_VERSION}" in result.detail


def test_bootstrap_fails_when_rolled_back() -> None:
    session = StubSession()
    _bootstrap(session, status="UPDATE_ROLLBACK_COMPLETE", version=None)
    assert not preflight(session)[0].cdk_bootstrap().ok


def test_the_required_bootstrap_version_comes_from_the_cloud_assembly(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"artifacts": {"a": {"properties": {"requiresBootstrapStackVersion": 6}},
                       "b": {"properties": {"requiresBootstrapStackVersion": 30}}}}))
    check = Preflight(StubSession(), InfraSettings(), assembly_dir=tmp_path)
    assert check.required_bootstrap_version() == 30


# --- Lambda concurrency
def _concurrency(session: StubSession, quota: int, unreserved: int, ours: int | None = None) -> None:
    lam = session.stub("lambda")
    lam.add_response("get_account_settings", {"AccountLimit": {
        "ConcurrentExecutions": quota, "UnreservedConcurrentExecutions": unreserved}})
    params = {"FunctionName": "recs-recommender", "Qualifier": "live"}
    if ours is None:
        lam.add_client_error("get_provisioned_concurrency_config", "ProvisionedConcurrencyConfigNotFoundException",
                             "none", 404, expected_params=params)
    else:
        lam.add_response("get_provisioned_concurrency_config",
                         {"RequestedProvisionedConcurrentExecutions": ours, "Status": "READY"}, params)


def test_concurrency_passes_in_an_established_account() -> None:
    session = StubSession()
    _concurrency(session, 1000, 1000)
    assert preflight(session, cold_start="provisioned")[0].lambda_concurrency().ok
    session.done()


def test_concurrency_fails_in_a_new_account_with_a_quota_of_10() -> None:
    session = StubSession()
    _concurrency(session, 10, 10)
    result = preflight(session, cold_start="provisioned")[0].lambda_concurrency()
    assert not result.ok
    assert "L-B99A9384" in result.fix and "at least 110" in result.fix


def test_concurrency_fails_when_other_functions_reserved_the_pool() -> None:
    session = StubSession()
    _concurrency(session, 1000, 105)
    result = preflight(session, cold_start="provisioned")[0].lambda_concurrency()
    assert not result.ok and "provisionedConcurrencyMax to 5" in result.fix


def test_concurrency_counts_what_the_alias_holds_already_on_a_redeploy() -> None:
    session = StubSession()
    _concurrency(session, 1000, 104, ours=6)  # 104 + 6 - 100 = 10 = provisionedConcurrencyMax
    assert preflight(session, cold_start="provisioned")[0].lambda_concurrency().ok


@pytest.mark.parametrize("cold_start", ["none", "snapstart"])
def test_without_provisioned_concurrency_a_new_account_with_a_quota_of_10_passes(cold_start: str) -> None:
    # nothing is allocated: on-demand environments (and SnapStart restores) need no unreserved headroom
    session = StubSession()
    _concurrency(session, 10, 10)
    result = preflight(session, cold_start=cold_start)[0].lambda_concurrency()
    assert result.ok, result.line()
    assert "quota 10" in result.detail
    assert f"coldStart={cold_start} allocates no provisioned concurrency" in result.detail
    session.done()


def test_none_passes_and_says_a_left_over_allocation_is_released() -> None:
    session = StubSession()
    _concurrency(session, 1000, 994, ours=6)
    result = preflight(session, cold_start="none")[0].lambda_concurrency()
    assert result.ok and "recs-recommender:live holds 6 now" in result.detail


def test_snapstart_fails_while_the_alias_still_holds_provisioned_concurrency() -> None:
    # SnapStart cannot be combined with provisioned concurrency, and CloudFormation would move the alias to the new
    # SnapStart version before deleting the old strategy's resources: go through coldStart=none first
    session = StubSession()
    _concurrency(session, 1000, 994, ours=6)
    result = preflight(session, cold_start="snapstart")[0].lambda_concurrency()
    assert not result.ok
    assert "-c coldStart=none" in result.fix and "delete-provisioned-concurrency-config" in result.fix


# --- OpenSearch's service-linked role
def test_slr_existing_passes_when_it_exists() -> None:
    session = StubSession()
    session.stub("iam").add_response("get_role", role(SLR), {"RoleName": SLR})
    assert preflight(session, opensearch_service_linked_role="existing")[0].opensearch_service_linked_role().ok


def test_slr_existing_fails_when_missing() -> None:
    session = StubSession()
    session.stub("iam").add_client_error("get_role", "NoSuchEntity", "missing", 404)
    result = preflight(session, opensearch_service_linked_role="existing")[0].opensearch_service_linked_role()
    assert not result.ok and "create-service-linked-role" in result.fix


def test_slr_create_passes_when_missing() -> None:
    session = StubSession()
    session.stub("iam").add_client_error("get_role", "NoSuchEntity", "missing", 404)
    assert preflight(session)[0].opensearch_service_linked_role().ok


def test_slr_create_fails_when_someone_else_created_it() -> None:
    session = StubSession()
    session.stub("iam").add_response("get_role", role(SLR), {"RoleName": SLR})
    session.stub("cloudformation").add_client_error("describe_stack_resources", "ValidationError",
                                                    "Stack with id recs-data does not exist", 400)
    result = preflight(session)[0].opensearch_service_linked_role()
    assert not result.ok and "opensearchServiceLinkedRole=existing" in result.fix


def test_slr_create_passes_when_the_data_stack_owns_it() -> None:
    session = StubSession()
    session.stub("iam").add_response("get_role", role(SLR), {"RoleName": SLR})
    session.stub("cloudformation").add_response("describe_stack_resources", {"StackResources": [{
        "LogicalResourceId": "VectorStoreServiceLinkedRole", "ResourceType": "AWS::IAM::ServiceLinkedRole",
        "ResourceStatus": "CREATE_COMPLETE", "Timestamp": datetime.datetime(2024, 1, 1)}]}, {"StackName": "recs-data"})
    assert preflight(session)[0].opensearch_service_linked_role().ok


# --- API Gateway's account role
def test_account_role_passes_when_the_stack_creates_it() -> None:
    session = StubSession()
    session.stub("apigateway").add_response("get_account", {})
    assert preflight(session)[0].apigateway_account_role().ok


def test_account_role_existing_fails_when_unset() -> None:
    session = StubSession()
    session.stub("apigateway").add_response("get_account", {})
    result = preflight(session, api_gateway_account_role="existing")[0].apigateway_account_role()
    assert not result.ok and "apiGatewayAccountRole=create" in result.fix


def test_account_role_existing_passes_when_set_to_a_live_role() -> None:
    session = StubSession()
    arn = f"arn:aws:iam::{ACCOUNT}:role/apigw-logs"
    session.stub("apigateway").add_response("get_account", {"cloudwatchRoleArn": arn})
    session.stub("iam").add_response("get_role", role("apigw-logs"), {"RoleName": "apigw-logs"})
    assert preflight(session, api_gateway_account_role="existing")[0].apigateway_account_role().ok


def test_account_role_existing_fails_when_the_named_role_was_deleted() -> None:
    session = StubSession()
    session.stub("apigateway").add_response("get_account", {"cloudwatchRoleArn": f"arn:aws:iam::{ACCOUNT}:role/gone"})
    session.stub("iam").add_client_error("get_role", "NoSuchEntity", "missing", 404)
    assert not preflight(session, api_gateway_account_role="existing")[0].apigateway_account_role().ok


# --- instance types offered in the region
def _instance_types(session: StubSession, offered: list[str], low: str = "10", high: str = "100") -> None:
    stub = session.stub("opensearch")
    stub.add_response("list_instance_type_details",
                      {"InstanceTypeDetails": [{"InstanceType": t} for t in offered[:1]], "NextToken": "page2"},
                      {"EngineVersion": "OpenSearch_2.19"})
    stub.add_response("list_instance_type_details", {"InstanceTypeDetails": [{"InstanceType": t} for t in offered[1:]]},
                      {"EngineVersion": "OpenSearch_2.19", "NextToken": "page2"})
    if "t3.small.search" in offered:
        stub.add_response("describe_instance_type_limits", {"LimitsByRole": {"data": {"StorageTypes": [{
            "StorageTypeName": "ebs", "StorageSubTypeName": "gp3", "StorageTypeLimits": [
                {"LimitName": "MinimumVolumeSize", "LimitValues": [low]},
                {"LimitName": "MaximumVolumeSize", "LimitValues": [high]}]}]}}},
            {"InstanceType": "t3.small.search", "EngineVersion": "OpenSearch_2.19"})


def test_instance_type_passes_when_offered_and_the_volume_fits() -> None:
    session = StubSession()
    _instance_types(session, ["m6g.large.search", "t3.small.search"])  # found on the second page
    assert preflight(session)[0].opensearch_instance_type().ok
    session.done()


def test_instance_type_fails_when_not_offered() -> None:
    session = StubSession()
    _instance_types(session, ["m6g.large.search", "r6g.large.search"])
    result = preflight(session)[0].opensearch_instance_type()
    assert not result.ok and "not offered" in result.detail


def test_instance_type_fails_when_the_region_refuses_the_volume() -> None:
    session = StubSession()
    _instance_types(session, ["t3.small.search", "x"], high="50")
    result = preflight(session, opensearch_volume_gib=60)[0].opensearch_instance_type()
    assert not result.ok and "10 and 50" in result.fix


def test_redis_node_type_passes_and_fails_on_the_offerings() -> None:
    session = StubSession()
    stub = session.stub("elasticache")
    stub.add_response("describe_reserved_cache_nodes_offerings", {"ReservedCacheNodesOfferings": [
        {"ReservedCacheNodesOfferingId": "x", "CacheNodeType": "cache.t4g.micro"}]},
        {"CacheNodeType": "cache.t4g.micro", "MaxRecords": 20})
    stub.add_response("describe_reserved_cache_nodes_offerings", {"ReservedCacheNodesOfferings": []},
                      {"CacheNodeType": "cache.t4g.micro", "MaxRecords": 20})
    check = preflight(session)[0]
    assert check.redis_node_type().ok
    assert not check.redis_node_type().ok


# --- container builder
def test_container_builder_passes_when_docker_answers() -> None:
    check, commands = preflight(StubSession())
    assert check.container_builder().ok and commands == [["docker", "info"]]


def test_container_builder_fails_when_the_daemon_is_down() -> None:
    result = preflight(StubSession(), run_code=1)[0].container_builder()
    assert not result.ok and "indexerImageUri" in result.fix


def test_container_builder_fails_without_docker() -> None:
    assert not preflight(StubSession(), docker=None)[0].container_builder().ok


def test_an_image_uri_needs_no_builder() -> None:
    uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/recs-indexer:1"
    check, commands = preflight(StubSession(), docker=None, indexer_image_uri=uri)
    assert check.container_builder().ok and commands == []


# --- the whole run and the command
def _all_pass(session: StubSession) -> None:
    session.stub("sts").add_response("get_caller_identity", IDENTITY)
    _bootstrap(session)
    _concurrency(session, 1000, 1000)
    session.stub("iam").add_client_error("get_role", "NoSuchEntity", "missing", 404)
    session.stub("apigateway").add_response("get_account", {})
    _instance_types(session, ["t3.small.search", "m6g.large.search"])
    session.stub("elasticache").add_response("describe_reserved_cache_nodes_offerings",
                                             {"ReservedCacheNodesOfferings": [{"CacheNodeType": "cache.t4g.micro"}]})


def test_run_all_answers_every_check_once_in_order() -> None:
    session = StubSession()
    _all_pass(session)
    results = preflight(session)[0].run_all()
    assert [r.name for r in results] == list(CHECK_NAMES) == planned_checks(InfraSettings())
    assert all(r.ok for r in results), [r.line() for r in results if not r.ok]
    session.done()


def test_an_unexpected_error_is_that_checks_failure_not_a_crash() -> None:
    session = StubSession()
    _all_pass(session)
    session.stubbers["lambda"]._queue.clear()  # replace the concurrency answers with a refusal
    session.stub("lambda").add_client_error("get_account_settings", "AccessDeniedException", "no", 403)
    results = {r.name: r for r in preflight(session)[0].run_all()}
    assert not results["lambda-concurrency"].ok and "AccessDeniedException" in results["lambda-concurrency"].detail
    assert results["container-builder"].ok


def test_report_prints_one_line_per_check_and_the_fix() -> None:
    lines: list[str] = []
    ok = report([CheckResult("a", True, "fine"), CheckResult("b", False, "broken", "do this")], say=lines.append)
    assert not ok
    assert lines[0] == "PASS  a: fine"
    assert lines[1] == "FAIL  b: broken\n      fix: do this"
    assert lines[-1] == "preflight: 1 passed, 1 failed (b)"


@pytest.mark.parametrize("passing", [True, False])
def test_the_command_exits_1_on_any_failure(passing: bool, capsys: pytest.CaptureFixture[str]) -> None:
    session = StubSession()
    _all_pass(session)
    if not passing:
        session.stubbers["apigateway"]._queue.clear()
        session.stub("apigateway").add_response("get_account", {})
    image = f"indexerImageUri={ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/recs-indexer:1"  # no Docker on a CI machine
    args = argparse.Namespace(context=[image] if passing else [image, "apiGatewayAccountRole=existing"], region=REGION)
    code = _preflight(args, session=session)
    out = capsys.readouterr().out
    assert code == (0 if passing else 1)
    assert out.count("PASS") + out.count("FAIL") == len(CHECK_NAMES)
    assert ("FAIL  apigateway-account-role" in out) is not passing
