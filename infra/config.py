"""The CDK app's settings: one frozen object read from CDK context, validated before any construct is built.

Every key below can be set in ``cdk.json`` (``"context"``) or on the command line
(``npx cdk deploy -c lambdaMemoryMiB=2048``); the value given here is the default used when a
key is absent. ``InfraSettings.from_context(app.node)`` reads them; an explicit keyword given to
``InfraSettings.from_mapping(..., **overrides)`` beats the context (the tests use that).

The defaults are the cheapest set-up that still runs the whole design: one OpenSearch
``t3.small.search`` node, one ``cache.t4g.micro`` Redis node, no NAT gateway (VPC endpoints in one
AZ instead), an arm64 Lambda on demand (``coldStart=none``). docs/deploy.md prices them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import constructs

from core.settings import label, load, names_of, setting, variables
from infra.errors import InfraConfigError
from infra.opensearch_limits import volume_limits

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository root: the Docker build context of the indexer image and the home of ``build/``."""

API_AUTH_MODES = ("apiKey", "iam")
ACCOUNT_ROLE_MODES = ("create", "existing")
"""How an account-wide role the deployment needs is had: the stack creates (and retains) it, or it exists already
(``recs deploy preflight`` checks that it does)."""
LAMBDA_ARCHITECTURES = ("arm64", "x86_64")
COLD_START_STRATEGIES = ("none", "provisioned", "snapstart")
"""How the recommender meets cold starts (``coldStart``): on-demand environments only; provisioned concurrency on the
``live`` alias with target tracking and the forecaster; SnapStart on published versions behind ``live``."""
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{1,14}$")
_MODEL_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ECR_IMAGE_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/(?P<repository>[a-z0-9._/-]+):(?P<tag>[\w.-]+)$"
)
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SCHEDULE_RE = re.compile(r"^(rate\(\s*[1-9]\d*\s+(minute|minutes|hour|hours|day|days)\s*\)|cron\(\S+( \S+){5}\))$")
FARGATE_MEMORY_MIB: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}
"""Fargate's task CPU and memory combinations (Amazon ECS Developer Guide, "Task CPU and memory" for Fargate)."""


def fargate_memory_text(cpu: int) -> str:
    sizes = FARGATE_MEMORY_MIB[cpu]
    if len(sizes) <= 4:
        return ", ".join(map(str, sizes))
    return f"{sizes[0]} to {sizes[-1]} in steps of {sizes[1] - sizes[0]}"


@dataclass(frozen=True)
class InfraSettings:
    """Everything the two stacks read. Field names are the context keys in snake_case (see ``context_key``)."""

    prefix: str = setting("prefix", default="recs")
    """Lower-case name prefix: stacks ``<prefix>-data`` / ``<prefix>-serving``, the function, the domain."""

    # --- network
    max_azs: int = setting("maxAzs", default=2)
    """Availability zones the VPC spans (fixed, so synth needs no account lookup)."""
    nat_gateways: int = setting("natGateways", default=0)
    """0: isolated subnets only, AWS services reached through VPC endpoints (no NAT cost)."""
    interface_endpoints: bool = setting("interfaceEndpoints", default=True)
    """Interface endpoints for ECR, CloudWatch Logs and Secrets Manager (needed when ``natGateways`` is 0)."""
    endpoint_azs: int = setting("endpointAzs", default=1)
    """How many AZs get an ENI of each interface endpoint (each ENI is billed per hour)."""

    # --- OpenSearch
    opensearch_version: str = setting("opensearchVersion", default="2.19")
    opensearch_instance_type: str = setting("opensearchInstanceType", default="t3.small.search")
    opensearch_data_nodes: int = setting("opensearchDataNodes", default=1)
    opensearch_volume_gib: int = setting("opensearchVolumeGiB", default=10)
    opensearch_alias: str = setting("opensearchAlias", default="movies")
    opensearch_service_linked_role: str = setting("opensearchServiceLinkedRole", default="create")
    """``create``: the data stack creates OpenSearch's service-linked role (retained on delete), which a VPC domain
    needs before it can be created; ``existing``: the account has it already (creating it again fails)."""

    # --- Redis (ElastiCache)
    redis_node_type: str = setting("redisNodeType", default="cache.t4g.micro")
    redis_replicas: int = setting("redisReplicas", default=0)
    """Read replicas; 1 or more turns on Multi-AZ with automatic fail-over."""
    redis_engine_version: str = setting("redisEngineVersion", default="7.1")
    redis_port: int = setting("redisPort", default=6380)

    # --- indexer (Fargate)
    indexer_cpu: int = setting("indexerCpu", default=1024)
    indexer_memory_mib: int = setting("indexerMemoryMiB", default=2048)
    indexer_architecture: str = setting("indexerArchitecture", default="x86_64")
    """CPU architecture of the indexer image; the image is built by Docker on the deploying machine."""
    indexer_image_uri: str | None = setting("indexerImageUri", default=None)
    """A prebuilt indexer image in ECR (``<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>``, built from
    ``indexer/Dockerfile`` for ``indexerArchitecture``) instead of building one at deploy: no Docker needed then."""

    # --- retraining (Fargate)
    retrain_cpu: int = setting("retrainCpu", default=1024)
    """vCPU units of the retraining task; the default trains the bundled sample (ml-latest-small) in minutes. For
    ml-32m docs/operations.md ("Retraining") documents 4096 with 16384 MiB and capped training (``retrainArgs``)."""
    retrain_memory_mib: int = setting("retrainMemoryMiB", default=4096)
    """Memory of the retraining task, a Fargate combination with ``retrainCpu``."""
    retrain_schedule: str | None = setting("retrainSchedule", default=None)
    """An EventBridge schedule expression (``rate(7 days)``, ``cron(0 3 ? * SUN *)``, UTC) that runs the retraining
    task; unset (the default): no schedule, only uploads under ``ratings/`` (and a manual run) retrain."""
    retrain_image_uri: str | None = setting("retrainImageUri", default=None)
    """A prebuilt retraining image in ECR (built from ``training/Dockerfile`` for x86_64) instead of a Docker build
    at deploy, like ``indexerImageUri``."""
    retrain_args: str | None = setting("retrainArgs", default=None)
    """Model and training options appended to the retraining task's command, as for ``recs train`` (e.g. ``--epochs 2
    --max-examples-per-user 30 --members 1`` for a 32M-rating release: docs/operations.md); checked against the
    retraining command line at synth. Unset: the training defaults."""
    retrain_tolerance: float = setting("retrainTolerance", default=0.005)
    """The gate's tolerance (``RECS_RETRAIN_TOLERANCE``): how much lower the new model's Recall@10 and NDCG@10 may
    be than the live model's."""
    retrain_alarm_after: int = setting("retrainAlarmAfter", default=3)
    """Alarm when this many retraining runs in a row ended held back or failed (the report's streak)."""

    # --- recommender (Lambda)
    model_version: str | None = setting("modelVersion", default=None)
    """Optional pin. Unset (the default): ``RECS_BUNDLE=s3://<bucket>/bundles/``, the bundle ROOT: the function
    serves the bundle of whatever model the live index holds and follows a retrain without a redeploy. Set:
    ``RECS_BUNDLE=s3://<bucket>/bundles/<modelVersion>``, that one model only; while the index holds another,
    recommendations are the flagged popularity fallback (never the pinned tower against other vectors)."""
    lambda_architecture: str = setting("lambdaArchitecture", default="arm64")
    """Graviton (arm64) is about 20% cheaper per GB-second; the asset is built for either without Docker."""
    lambda_memory_mib: int = setting("lambdaMemoryMiB", default=1024)
    lambda_timeout_seconds: int = setting("lambdaTimeoutSeconds", default=10)
    lambda_asset_dir: str | None = setting("lambdaAssetDir", default=None)
    """A prebuilt Lambda asset directory; default: ``build/lambda-<arch>``, (re)built at synth when stale."""
    cold_start: str = setting("coldStart", default="none")
    """``none`` (the default): on-demand environments only, a cold start pays the init (about a quarter of a second
    here). ``provisioned``: provisioned concurrency on the ``live`` alias, owned by its scalable target (target
    tracking, and the forecaster with ``predictiveScaling``). ``snapstart``: SnapStart on published versions behind
    ``live``; a cold start restores a snapshot taken after the init. ``python -m bench.scaling`` prices the three on
    the same traffic (docs/deploy.md, "Cold starts", says when each wins)."""
    provisioned_concurrency_min: int = setting("provisionedConcurrencyMin", default=1)
    provisioned_concurrency_max: int = setting("provisionedConcurrencyMax", default=10)
    provisioned_concurrency_target: float = setting("provisionedConcurrencyTarget", default=0.7)
    """Target tracking on ``LambdaProvisionedConcurrencyUtilization``."""
    predictive_scaling: bool = setting("predictiveScaling", default=True)
    """With ``coldStart=provisioned``: deploy the hourly forecaster (``scaling/``) that schedules the alias' minimum
    capacity ahead of traffic. The other strategies have no capacity to schedule, so no forecaster."""
    predictive_scaling_dry_run: bool = setting("predictiveScalingDryRun", default=False)
    """The forecaster plans and logs but writes no scheduled action (a trial period)."""

    # --- API Gateway
    api_auth: str = setting("apiAuth", default="apiKey")
    """``apiKey``: an API key with a usage plan (identifies and throttles callers; AWS says it is not an
    authorization mechanism, so synth warns unless ``apiWaf`` is on); ``iam``: SigV4-signed requests (AWS_IAM
    authorization)."""
    api_waf: bool = setting("apiWaf", default=False)
    """Associate an AWS WAF web ACL with the stage: a rate-based rule blocking an IP above ``apiWafRateLimit``."""
    api_waf_rate_limit: int = setting("apiWafRateLimit", default=1000)
    """Requests per client IP per 5 minutes above which the WAF rule blocks that IP (10 to 2,000,000,000)."""
    api_gateway_account_role: str = setting("apiGatewayAccountRole", default="create")
    """``create``: the serving stack sets API Gateway's account-wide CloudWatch Logs role (created and retained), which
    the stage's access logs need; ``existing``: the region's account settings name a role already."""
    api_rate_limit: int = setting("apiRateLimit", default=100)
    """Steady-state requests per second, stage-wide and per key."""
    api_burst_limit: int = setting("apiBurstLimit", default=200)
    api_quota_per_day: int = setting("apiQuotaPerDay", default=0)
    """Requests per API key per day; 0: no quota."""
    api_execution_logs: bool = setting("apiExecutionLogs", default=False)
    """API Gateway execution logs (ERROR level). Like the access logs (always on) they need the account-wide
    API Gateway CloudWatch role (``apiGatewayAccountRole``)."""

    # --- operations
    tracing: bool = setting("tracing", default=False)
    """X-Ray on the API stage and the Lambda (billed per trace: about $18/month at 10 req/s)."""
    log_retention_days: int = setting("logRetentionDays", default=30)
    alarm_email: str | None = setting("alarmEmail", default=None)
    """Subscribe this address to the alarm topic (it must confirm the subscription)."""
    alarm_p99_latency_ms: int = setting("alarmP99LatencyMs", default=1000)
    alarm_5xx_rate: float = setting("alarm5xxRate", default=0.01)
    """Alarm when this fraction of API requests answer 5xx over 5 minutes."""
    nag: bool = setting("nag", default=True)
    """Run the cdk-nag AwsSolutions rules at synth (policy validation: any error fails synth)."""

    settings_error = InfraConfigError
    settings_label = staticmethod(lambda key: f"context {key!r}")

    @classmethod
    def from_context(cls, node: constructs.Node, **overrides: Any) -> InfraSettings:
        """Settings from the construct tree's context (``cdk.json`` and ``-c key=value``)."""
        context = {}
        for names in variables(cls):
            for key in names:
                raw = node.try_get_context(key)
                if raw is not None:
                    context[key] = raw
        return cls.from_mapping(context, **overrides)

    @classmethod
    def from_mapping(cls, context: Mapping[str, Any], **overrides: Any) -> InfraSettings:
        """Settings from a context mapping (camelCase keys; unknown keys are CDK's own and ignored)."""
        return load(cls, context, **overrides)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def check(ok: bool, field_name: str, why: str) -> None:
            if not ok:
                raise InfraConfigError(f"{label(self, field_name)}: {why}")

        check(bool(_PREFIX_RE.match(self.prefix)), "prefix", "2-15 lower-case letters, digits or '-', letter first")
        check(1 <= self.max_azs <= 3, "max_azs", "must be 1, 2 or 3")
        check(0 <= self.nat_gateways <= self.max_azs, "nat_gateways", "must be between 0 and maxAzs")
        check(1 <= self.endpoint_azs <= self.max_azs, "endpoint_azs", "must be between 1 and maxAzs")
        check(
            self.interface_endpoints or self.nat_gateways > 0,
            "interface_endpoints",
            "with natGateways 0 the tasks reach ECR, Logs and Secrets Manager only through interface endpoints",
        )
        check(bool(re.match(r"^\d+\.\d+$", self.opensearch_version)), "opensearch_version", "like '2.19'")
        check(self.opensearch_instance_type.endswith(".search"), "opensearch_instance_type", "like 't3.small.search'")
        check(
            1 <= self.opensearch_data_nodes <= 10
            and (self.opensearch_data_nodes == 1 or self.opensearch_data_nodes % 2 == 0),
            "opensearch_data_nodes",
            "1 (single AZ) or an even number up to 10 (spread over two AZs)",
        )
        check(
            self.opensearch_data_nodes == 1 or self.max_azs >= 2,
            "opensearch_data_nodes",
            "more than one data node needs maxAzs >= 2 (zone awareness)",
        )
        limits = volume_limits(self.opensearch_instance_type)
        check(limits is not None, "opensearch_instance_type",
              "not in infra/opensearch_limits.py's table of instance types with EBS storage (add it from the source "
              "named there)")
        if limits is not None:
            check(limits[0] <= self.opensearch_volume_gib <= limits[1], "opensearch_volume_gib",
                  f"between {limits[0]} and {limits[1]} GiB for {self.opensearch_instance_type} (gp3)")
        check(self.opensearch_service_linked_role in ACCOUNT_ROLE_MODES, "opensearch_service_linked_role",
              f"one of {', '.join(ACCOUNT_ROLE_MODES)}")
        check(bool(re.match(r"^[a-z0-9][a-z0-9_.-]{0,100}$", self.opensearch_alias)), "opensearch_alias",
              "lower-case letters, digits, '-', '_' or '.'")
        check(self.redis_node_type.startswith("cache."), "redis_node_type", "like 'cache.t4g.micro'")
        check(0 <= self.redis_replicas <= 5, "redis_replicas", "between 0 and 5")
        check(self.redis_replicas == 0 or self.max_azs >= 2, "redis_replicas", "replicas need maxAzs >= 2")
        check(1024 <= self.redis_port <= 65535, "redis_port", "between 1024 and 65535")
        check(self.indexer_cpu in (256, 512, 1024, 2048, 4096), "indexer_cpu", "a Fargate CPU size")
        check(512 <= self.indexer_memory_mib <= 30720, "indexer_memory_mib", "between 512 and 30720")
        check(self.indexer_architecture in LAMBDA_ARCHITECTURES, "indexer_architecture", "arm64 or x86_64")
        check(self.indexer_image_uri is None or bool(ECR_IMAGE_RE.match(self.indexer_image_uri)), "indexer_image_uri",
              "an ECR image, <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag> (the task pulls it through "
              "the VPC's ECR endpoints)")
        check(self.retrain_cpu in FARGATE_MEMORY_MIB, "retrain_cpu",
              f"a Fargate CPU size: {', '.join(map(str, FARGATE_MEMORY_MIB))}")
        if self.retrain_cpu in FARGATE_MEMORY_MIB:
            check(self.retrain_memory_mib in FARGATE_MEMORY_MIB[self.retrain_cpu], "retrain_memory_mib",
                  f"a Fargate memory size for {self.retrain_cpu} CPU units: {fargate_memory_text(self.retrain_cpu)}")
        check(self.retrain_schedule is None or bool(_SCHEDULE_RE.match(self.retrain_schedule)), "retrain_schedule",
              "an EventBridge schedule expression: rate(N minutes|hours|days) or cron(minutes hours day month weekday "
              "year)")
        check(self.retrain_image_uri is None or bool(ECR_IMAGE_RE.match(self.retrain_image_uri)), "retrain_image_uri",
              "an ECR image, <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>")
        if self.retrain_args is not None:
            from training.retrain_cli import check_model_flags

            try:
                check_model_flags(self.retrain_args)
            except ValueError as exc:
                check(False, "retrain_args", f"{exc} (model and training options of `recs train`, e.g. --epochs 2)")
        check(0 <= self.retrain_tolerance < 1, "retrain_tolerance", "between 0 and 1 (absolute Recall@10 / NDCG@10)")
        check(1 <= self.retrain_alarm_after <= 100, "retrain_alarm_after", "between 1 and 100 runs")
        check(self.model_version is None or bool(_MODEL_VERSION_RE.match(self.model_version)), "model_version",
              "letters, digits, '.', '_' or '-' (the folder name under bundles/)")
        check(self.lambda_architecture in LAMBDA_ARCHITECTURES, "lambda_architecture", "arm64 or x86_64")
        check(128 <= self.lambda_memory_mib <= 10240, "lambda_memory_mib", "between 128 and 10240")
        check(1 <= self.lambda_timeout_seconds <= 29, "lambda_timeout_seconds",
              "between 1 and 29 (API Gateway's integration timeout)")
        check(self.cold_start in COLD_START_STRATEGIES, "cold_start", f"one of {', '.join(COLD_START_STRATEGIES)}")
        check(self.provisioned_concurrency_min >= 1, "provisioned_concurrency_min", "at least 1")
        check(self.provisioned_concurrency_min <= self.provisioned_concurrency_max, "provisioned_concurrency_max",
              "must not be below provisionedConcurrencyMin")
        check(0.1 <= self.provisioned_concurrency_target <= 0.9, "provisioned_concurrency_target",
              "a utilization between 0.1 and 0.9")
        check(self.api_auth in API_AUTH_MODES, "api_auth", f"one of {', '.join(API_AUTH_MODES)}")
        check(1 <= self.api_rate_limit <= 10_000, "api_rate_limit", "between 1 and 10000")
        check(self.api_rate_limit <= self.api_burst_limit <= 10_000, "api_burst_limit",
              "between apiRateLimit and 10000")
        check(self.api_quota_per_day >= 0, "api_quota_per_day", "0 (none) or more")
        # Rate-based rule limit: AWS WAF Developer Guide, "Rate-based rule statement" (minimum 10 since 2024).
        check(10 <= self.api_waf_rate_limit <= 2_000_000_000, "api_waf_rate_limit", "between 10 and 2000000000")
        check(self.api_gateway_account_role in ACCOUNT_ROLE_MODES, "api_gateway_account_role",
              f"one of {', '.join(ACCOUNT_ROLE_MODES)}")
        check(self.log_retention_days in _RETENTION_DAYS, "log_retention_days",
              f"one of CloudWatch's retention periods: {', '.join(map(str, _RETENTION_DAYS))}")
        check(self.alarm_email is None or bool(_EMAIL_RE.match(self.alarm_email)), "alarm_email",
              "an e-mail address")
        check(self.alarm_p99_latency_ms >= 10, "alarm_p99_latency_ms", "at least 10")
        check(0 < self.alarm_5xx_rate < 1, "alarm_5xx_rate", "a fraction between 0 and 1")

    # --- derived names (one place, so the stacks and the docs agree)
    @property
    def data_stack_name(self) -> str:
        return f"{self.prefix}-data"

    @property
    def serving_stack_name(self) -> str:
        return f"{self.prefix}-serving"

    @property
    def function_name(self) -> str:
        return f"{self.prefix}-recommender"

    @property
    def domain_name(self) -> str:
        return f"{self.prefix}-vectors"

    @property
    def provisioned(self) -> bool:
        """``coldStart=provisioned``: the alias has provisioned concurrency, a scalable target and its alarms."""
        return self.cold_start == "provisioned"

    @property
    def snapstart(self) -> bool:
        """``coldStart=snapstart``: SnapStart on the published versions the ``live`` alias points at."""
        return self.cold_start == "snapstart"

    @property
    def forecaster(self) -> bool:
        """Whether the predictive-scaling forecaster is deployed (``provisioned`` with ``predictiveScaling``)."""
        return self.provisioned and self.predictive_scaling

    @property
    def lambda_pip_arch(self) -> str:
        """The manylinux architecture name the packaging command takes."""
        return "aarch64" if self.lambda_architecture == "arm64" else "x86_64"

    @property
    def opensearch_replicas(self) -> int:
        """Replicas per index the indexer asks for: 0 on a single node (else the cluster stays yellow)."""
        return 0 if self.opensearch_data_nodes == 1 else 1


_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                   3288, 3653)


def context_key(field_name: str) -> str:
    """``lambda_memory_mib`` -> ``lambdaMemoryMiB``: the key a field is read from in ``cdk.json``."""
    return names_of(InfraSettings, field_name)[0]
