"""``recs deploy preflight``: read-only checks that a first ``cdk deploy`` in this account and region will not fail
(or come up silently broken) for a reason known in advance. One line per check, with what to do when it fails.

Every call is a read (Get*/Describe*/List*); nothing is created. The checks and the rule each applies:

=============================== ==========================================================================
``credentials``                 STS GetCallerIdentity answers, and a region is configured.
``cdk-bootstrap``               the ``CDKToolkit`` stack is complete and its version (the SSM parameter
                                ``/cdk-bootstrap/hnb659fds/version``, which the CDK CLI reads too) is at least
                                what the synthesized app requires (``requiresBootstrapStackVersion``).
``lambda-concurrency``          ``coldStart=provisioned``: the account's concurrency quota and unreserved concurrency
                                leave 100 unreserved after ``provisionedConcurrencyMax`` is allocated to the alias.
                                ``none``/``snapstart``: nothing is allocated, so it only reports the quota; with
                                ``snapstart`` it fails while the alias still holds provisioned concurrency (the
                                two cannot be combined).
``opensearch-service-linked-role`` the role exists (``existing``) or can be created (``create``: absent, or already
                                a resource of the data stack).
``apigateway-account-role``     the region's API Gateway account settings name a CloudWatch Logs role, unless
                                the serving stack sets one (``apiGatewayAccountRole=create``).
``opensearch-instance-type``    the region offers the instance type for the engine version, and its EBS limits
                                there admit ``opensearchVolumeGiB``.
``redis-node-type``             ElastiCache offers the node type in the region.
``container-builder``           Docker (or ``CDK_DOCKER``) answers ``info``, or ``indexerImageUri`` is given.
=============================== ==========================================================================
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config import InfraSettings
from infra.constructs.recommender_function import ALIAS_NAME
from infra.constructs.vector_store import OPENSEARCH_SERVICE, SERVICE_LINKED_ROLE_NAME

BOOTSTRAP_STACK = "CDKToolkit"
BOOTSTRAP_VERSION_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
MIN_BOOTSTRAP_VERSION = 8
"""What aws-cdk-lib 2.x's default synthesizer asks of the bootstrap stack for this app (the highest
``requiresBootstrapStackVersion`` in its cloud assembly, read from ``cdk.out/manifest.json`` when present)."""

LAMBDA_UNRESERVED_MINIMUM = 100
"""Lambda keeps at least 100 units of account concurrency unreserved: reserved and provisioned concurrency can take
only what is above it (AWS Lambda Developer Guide, "Configuring reserved concurrency for a function": "You can reserve
up to the Unreserved account concurrency value that is shown, minus 100"; and "Configuring provisioned concurrency":
https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html). New accounts can start with a quota as low
as 10, where nothing can be allocated."""
LAMBDA_CONCURRENCY_QUOTA_CODE = "L-B99A9384"
"""Service Quotas code of Lambda's "Concurrent executions" quota."""

CHECK_NAMES = (
    "credentials",
    "cdk-bootstrap",
    "lambda-concurrency",
    "opensearch-service-linked-role",
    "apigateway-account-role",
    "opensearch-instance-type",
    "redis-node-type",
    "container-builder",
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        head = f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.detail}"
        return head if self.ok or not self.fix else f"{head}\n      fix: {self.fix}"


def planned_checks(settings: InfraSettings) -> list[str]:
    """The checks preflight runs for these settings (every one, always: each decides from the settings)."""
    return list(CHECK_NAMES)


def describe_checks(settings: InfraSettings) -> list[str]:
    """What each check would ask, without asking (for ``recs deploy --dry-run``)."""
    return [
        "credentials: STS GetCallerIdentity, and a configured region",
        f"cdk-bootstrap: CloudFormation DescribeStacks {BOOTSTRAP_STACK}, SSM GetParameter "
        f"{BOOTSTRAP_VERSION_PARAMETER} >= {MIN_BOOTSTRAP_VERSION}",
        (f"lambda-concurrency: Lambda GetAccountSettings; unreserved - {settings.provisioned_concurrency_max} "
         f"(provisionedConcurrencyMax) >= {LAMBDA_UNRESERVED_MINIMUM}" if settings.provisioned else
         f"lambda-concurrency: Lambda GetAccountSettings (coldStart={settings.cold_start}: no provisioned "
         "concurrency to allocate)"
         + ("; GetProvisionedConcurrencyConfig on the alias is empty" if settings.snapstart else "")),
        f"opensearch-service-linked-role: IAM GetRole {SERVICE_LINKED_ROLE_NAME} "
        f"(opensearchServiceLinkedRole={settings.opensearch_service_linked_role})",
        f"apigateway-account-role: API Gateway GetAccount (apiGatewayAccountRole={settings.api_gateway_account_role})",
        f"opensearch-instance-type: OpenSearch ListInstanceTypeDetails/DescribeInstanceTypeLimits for "
        f"{settings.opensearch_instance_type}, {settings.opensearch_volume_gib} GiB",
        f"redis-node-type: ElastiCache DescribeReservedCacheNodesOfferings for {settings.redis_node_type}",
        "container-builder: "
        + (f"indexerImageUri {settings.indexer_image_uri}" if settings.indexer_image_uri else
           f"`{os.environ.get('CDK_DOCKER', 'docker')} info`"),
    ]


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


class Preflight:
    """Runs the checks with ``session`` (a boto3 ``Session``: ``client(name)`` and ``region_name``)."""

    def __init__(
        self,
        session: Any,
        settings: InfraSettings,
        *,
        assembly_dir: Path | None = None,
        run: Callable[[Sequence[str]], int] | None = None,
        which: Callable[[str], str | None] = shutil.which,
    ) -> None:
        self.session = session
        self.settings = settings
        self.assembly_dir = assembly_dir
        self._run = run or _run_quietly
        self._which = which

    def client(self, name: str) -> Any:
        return self.session.client(name)

    def run_all(self) -> list[CheckResult]:
        results = [self.credentials()]
        if not results[0].ok:  # nothing else can be asked without credentials and a region
            return results
        for check in (self.cdk_bootstrap, self.lambda_concurrency, self.opensearch_service_linked_role,
                      self.apigateway_account_role, self.opensearch_instance_type, self.redis_node_type,
                      self.container_builder):
            try:
                results.append(check())
            except Exception as exc:  # an unexpected answer (e.g. AccessDenied) is that check's failure
                name = check.__name__.replace("_", "-")
                results.append(CheckResult(name, False, f"could not check ({_error_code(exc) or type(exc).__name__}: "
                                                        f"{exc})", "grant the deploying identity read access to it"))
        return results

    # --- the checks
    def credentials(self) -> CheckResult:
        region = getattr(self.session, "region_name", None)
        try:
            identity = self.client("sts").get_caller_identity()
        except Exception as exc:
            return CheckResult("credentials", False, f"no usable AWS credentials ({exc})",
                               "configure credentials (aws configure, AWS_PROFILE or SSO login), then retry")
        if not region:
            return CheckResult("credentials", False, f"account {identity['Account']}, but no region is set",
                               "set AWS_REGION (or AWS_DEFAULT_REGION, or --region)")
        return CheckResult("credentials", True, f"account {identity['Account']} as {identity['Arn']}, region {region}")

    def required_bootstrap_version(self) -> int:
        manifest = (self.assembly_dir / "manifest.json") if self.assembly_dir else None
        if manifest is None or not manifest.is_file():
            return MIN_BOOTSTRAP_VERSION
        versions = [int(v) for v in _find_values(json.loads(manifest.read_text()), "requiresBootstrapStackVersion")]
        return max(versions, default=MIN_BOOTSTRAP_VERSION)

    def cdk_bootstrap(self) -> CheckResult:
        required = self.required_bootstrap_version()
        fix = f"run `npx cdk bootstrap aws://<account>/{self.session.region_name}` (once per account and region)"
        try:
            stack = self.client("cloudformation").describe_stacks(StackName=BOOTSTRAP_STACK)["Stacks"][0]
        except Exception as exc:
            if _error_code(exc) == "ValidationError":  # "Stack with id CDKToolkit does not exist"
                return CheckResult("cdk-bootstrap", False, f"no {BOOTSTRAP_STACK} stack in this region", fix)
            raise
        status = stack["StackStatus"]
        if not status.endswith("_COMPLETE") or "ROLLBACK" in status or status.startswith("DELETE"):
            return CheckResult("cdk-bootstrap", False, f"{BOOTSTRAP_STACK} is {status}",
                               f"fix or delete the {BOOTSTRAP_STACK} stack, then bootstrap again")
        version = int(self.client("ssm").get_parameter(Name=BOOTSTRAP_VERSION_PARAMETER)["Parameter"]["Value"])
        if version < required:
            return CheckResult("cdk-bootstrap", False, f"bootstrap version {version}, the app needs {required}",
                               f"{fix} again to upgrade it")
        return CheckResult("cdk-bootstrap", True, f"{BOOTSTRAP_STACK} {status}, version {version} (needs {required})")

    def lambda_concurrency(self) -> CheckResult:
        lam = self.client("lambda")
        limits = lam.get_account_settings()["AccountLimit"]
        quota, unreserved = int(limits["ConcurrentExecutions"]), int(limits["UnreservedConcurrentExecutions"])
        ours = 0  # a redeploy: what our alias holds already comes back to the pool
        try:
            config = lam.get_provisioned_concurrency_config(FunctionName=self.settings.function_name,
                                                            Qualifier=ALIAS_NAME)
            ours = int(config.get("RequestedProvisionedConcurrentExecutions", 0))
        except Exception as exc:
            if _error_code(exc) not in ("ProvisionedConcurrencyConfigNotFoundException", "ResourceNotFoundException"):
                raise
        if not self.settings.provisioned:
            return self._on_demand_concurrency(quota, unreserved, ours)
        wanted = self.settings.provisioned_concurrency_max
        available = unreserved + ours - LAMBDA_UNRESERVED_MINIMUM
        detail = (f"quota {quota}, unreserved {unreserved}"
                  + (f" (+{ours} already on {self.settings.function_name}:{ALIAS_NAME})" if ours else "")
                  + f": {max(available, 0)} can be provisioned, provisionedConcurrencyMax is {wanted}")
        if available >= wanted:
            return CheckResult("lambda-concurrency", True, detail)
        return CheckResult(
            "lambda-concurrency", False, detail,
            f"request a Lambda 'Concurrent executions' quota ({LAMBDA_CONCURRENCY_QUOTA_CODE}) of at least "
            f"{quota - available + wanted} in Service Quotas (new accounts start as low as 10), or lower "
            f"-c provisionedConcurrencyMax" + (f" to {available}" if available >= 1 else ""),
        )

    def _on_demand_concurrency(self, quota: int, unreserved: int, ours: int) -> CheckResult:
        """``coldStart=none|snapstart``: nothing to allocate, so no capacity is demanded. A provisioned
        configuration left on the alias by an earlier ``provisioned`` deploy is removed by this deploy
        (``none``: the custom resource that owned it deletes it), but blocks SnapStart: Lambda does not
        combine the two, and CloudFormation moves the alias to the new SnapStart version before it deletes
        what the old strategy created."""
        name, alias = "lambda-concurrency", f"{self.settings.function_name}:{ALIAS_NAME}"
        detail = (f"quota {quota}, unreserved {unreserved}; coldStart={self.settings.cold_start} allocates no "
                  "provisioned concurrency")
        if ours and self.settings.snapstart:
            return CheckResult(
                name, False, f"{detail}, but {alias} still holds {ours} provisioned environments (from "
                "coldStart=provisioned), and SnapStart cannot be combined with provisioned concurrency",
                "deploy once with -c coldStart=none (it removes them), then with -c coldStart=snapstart; or "
                f"aws lambda delete-provisioned-concurrency-config --function-name {self.settings.function_name} "
                f"--qualifier {ALIAS_NAME}",
            )
        if ours:
            detail += (f"; {alias} holds {ours} now: this deploy releases them if coldStart=provisioned created "
                       "them (otherwise delete them by hand, they are billed)")
        return CheckResult(name, True, detail)

    def opensearch_service_linked_role(self) -> CheckResult:
        name = "opensearch-service-linked-role"
        exists = self._role_exists(SERVICE_LINKED_ROLE_NAME)
        mode = self.settings.opensearch_service_linked_role
        if mode == "existing":
            if exists:
                return CheckResult(name, True, f"{SERVICE_LINKED_ROLE_NAME} exists")
            return CheckResult(name, False,
                               f"{SERVICE_LINKED_ROLE_NAME} is missing (opensearchServiceLinkedRole=existing)",
                               f"aws iam create-service-linked-role --aws-service-name {OPENSEARCH_SERVICE}, or deploy "
                               "with -c opensearchServiceLinkedRole=create")
        if not exists:
            return CheckResult(name, True, f"{SERVICE_LINKED_ROLE_NAME} is missing; the data stack creates it")
        if self._stack_has(self.settings.data_stack_name, "AWS::IAM::ServiceLinkedRole"):
            return CheckResult(name, True,
                               f"{SERVICE_LINKED_ROLE_NAME} exists, created by {self.settings.data_stack_name}")
        return CheckResult(name, False, f"{SERVICE_LINKED_ROLE_NAME} exists already, so creating it would fail",
                           "deploy with -c opensearchServiceLinkedRole=existing (recs deploy does this by itself)")

    def apigateway_account_role(self) -> CheckResult:
        name = "apigateway-account-role"
        arn = self.client("apigateway").get_account().get("cloudwatchRoleArn")
        if self.settings.api_gateway_account_role == "create":
            note = f" (replaces {arn})" if arn else ""
            return CheckResult(name, True, f"the serving stack sets the account's CloudWatch Logs role{note}")
        if not arn:
            return CheckResult(
                name, False, "no CloudWatch Logs role in this region's API Gateway settings: the stage's access logs "
                "would fail to deploy", "deploy with -c apiGatewayAccountRole=create, or set one: aws apigateway "
                "update-account --patch-operations op=replace,path=/cloudwatchRoleArn,value=<role arn>")
        role = arn.rsplit("/", 1)[-1]
        if not self._role_exists(role):
            return CheckResult(name, False, f"the account settings name {arn}, which does not exist",
                               "deploy with -c apiGatewayAccountRole=create, or point the setting at a live role")
        return CheckResult(name, True, f"the account settings name {arn}")

    def opensearch_instance_type(self) -> CheckResult:
        name = "opensearch-instance-type"
        wanted = self.settings.opensearch_instance_type
        engine = f"OpenSearch_{self.settings.opensearch_version}"
        client = self.client("opensearch")
        offered: set[str] = set()
        token: str | None = None
        while True:
            page = client.list_instance_type_details(EngineVersion=engine, **({"NextToken": token} if token else {}))
            offered |= {d["InstanceType"] for d in page.get("InstanceTypeDetails", [])}
            token = page.get("NextToken")
            if not token:
                break
        if wanted not in offered:
            return CheckResult(name, False, f"{wanted} is not offered for {engine} in {self.session.region_name}",
                               "choose another -c opensearchInstanceType (aws opensearch list-instance-type-details "
                               f"--engine-version {engine}) or another region")
        limits = client.describe_instance_type_limits(InstanceType=wanted, EngineVersion=engine)
        low, high = _ebs_volume_limits(limits, "gp3")
        size = self.settings.opensearch_volume_gib
        if (low is not None and size < low) or (high is not None and size > high):
            return CheckResult(name, False, f"{wanted} takes gp3 volumes of {low}-{high} GiB here, not {size}",
                               f"set -c opensearchVolumeGiB between {low} and {high} (and update "
                               "infra/opensearch_limits.py if its table disagrees)")
        return CheckResult(name, True, f"{wanted} offered for {engine}; {size} GiB within {low}-{high} GiB")

    def redis_node_type(self) -> CheckResult:
        wanted = self.settings.redis_node_type
        answer = self.client("elasticache").describe_reserved_cache_nodes_offerings(CacheNodeType=wanted, MaxRecords=20)
        if answer.get("ReservedCacheNodesOfferings"):
            return CheckResult("redis-node-type", True, f"{wanted} offered in {self.session.region_name}")
        return CheckResult("redis-node-type", False, f"no offering of {wanted} in {self.session.region_name}",
                           "choose another -c redisNodeType (e.g. cache.t4g.micro or cache.t3.micro)")

    def container_builder(self) -> CheckResult:
        name = "container-builder"
        if self.settings.indexer_image_uri:
            return CheckResult(name, True, f"the indexer runs the prebuilt image {self.settings.indexer_image_uri}")
        docker = os.environ.get("CDK_DOCKER", "docker")
        fix = ("start Docker (cdk deploy builds the indexer image from indexer/Dockerfile), set CDK_DOCKER to another "
               "builder (finch, podman), or pass -c indexerImageUri=<ECR image>")
        if self._which(docker) is None:
            return CheckResult(name, False, f"`{docker}` is not on the PATH", fix)
        if self._run([docker, "info"]) != 0:
            return CheckResult(name, False, f"`{docker} info` failed: the daemon is not running or not reachable", fix)
        return CheckResult(name, True, f"`{docker} info` answers")

    # --- helpers
    def _role_exists(self, role_name: str) -> bool:
        try:
            self.client("iam").get_role(RoleName=role_name)
        except Exception as exc:
            if _error_code(exc) == "NoSuchEntity":
                return False
            raise
        return True

    def _stack_has(self, stack_name: str, resource_type: str) -> bool:
        try:
            answer = self.client("cloudformation").describe_stack_resources(StackName=stack_name)
        except Exception as exc:
            if _error_code(exc) == "ValidationError":  # no such stack
                return False
            raise
        return any(r["ResourceType"] == resource_type for r in answer.get("StackResources", []))


def _ebs_volume_limits(limits: dict[str, Any], volume_type: str) -> tuple[int | None, int | None]:
    """``(MinimumVolumeSize, MaximumVolumeSize)`` of the data role's EBS ``volume_type`` in a
    DescribeInstanceTypeLimits answer (``None`` where the answer gives none)."""
    low = high = None
    for storage in limits.get("LimitsByRole", {}).get("data", {}).get("StorageTypes", []):
        if storage.get("StorageTypeName") != "ebs" or storage.get("StorageSubTypeName") not in (volume_type, None):
            continue
        for limit in storage.get("StorageTypeLimits", []):
            values = [int(v) for v in limit.get("LimitValues", []) if str(v).isdigit()]
            if values and limit.get("LimitName") == "MinimumVolumeSize":
                low = values[0]
            if values and limit.get("LimitName") == "MaximumVolumeSize":
                high = values[0]
    return low, high


def _find_values(document: Any, key: str) -> Iterable[Any]:
    if isinstance(document, dict):
        for k, v in document.items():
            if k == key:
                yield v
            else:
                yield from _find_values(v, key)
    elif isinstance(document, list):
        for item in document:
            yield from _find_values(item, key)


def _run_quietly(command: Sequence[str]) -> int:
    try:
        return subprocess.run(list(command), capture_output=True, timeout=30, check=False).returncode
    except (OSError, subprocess.TimeoutExpired):
        return 1


def report(results: Sequence[CheckResult], say: Callable[[str], None] = print) -> bool:
    """Print one line per check (and its fix); True when every check passed."""
    for result in results:
        say(result.line())
    failed = [r.name for r in results if not r.ok]
    say(f"preflight: {len(results) - len(failed)} passed, {len(failed)} failed" + (f" ({', '.join(failed)})"
                                                                                   if failed else ""))
    return not failed
