"""The indexer as a Fargate task, run by EventBridge when a bundle manifest or a catalog delta lands in S3."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import ECR_IMAGE_RE, REPO_ROOT, InfraSettings
from infra.constructs.bundle_bucket import BUNDLES_PREFIX, DELTAS_PREFIX, BundleBucket
from infra.constructs.clients import ClientIdentity
from infra.constructs.common import log_group
from infra.constructs.network import Network
from infra.nag import acknowledge, ref

CONTAINER_NAME = "indexer"
DOCKERFILE = "indexer/Dockerfile"
DOCKER_CONTEXT_EXCLUDES = [
    "*",
    "!core",
    "!indexer",
    "**/__pycache__",
    "**/*.pyc",
]
"""The image's build context is the repository root minus everything but what the Dockerfile
copies (.dockerignore rules, with '!' re-including). Synth copies the context into cdk.out and
hashes it: leaving out tests, data, .venv, node_modules, build and the rest keeps synth fast and
means an edit elsewhere in the repository does not rebuild and push a new image."""

BUNDLE_MANIFEST_PATTERN = f"{BUNDLES_PREFIX}*/manifest.json"


class IndexerTask(Construct):
    """An ECS cluster, the indexer's Fargate task definition (image built from ``indexer/Dockerfile``
    as a CDK asset), and two EventBridge rules:

    * ``trigger``: S3 "Object Created" in the bundle bucket for ``bundles/*/manifest.json`` (full
      rebuild) or ``deltas/`` (incremental) runs the task in the private subnets, passing the event's
      bucket and key as the container's ``RECS_S3_BUCKET`` / ``RECS_S3_KEY``; events it cannot deliver
      (RunTask failing) go to a dead-letter queue.
    * ``failures``: an indexer task that stopped with a non-zero exit code, or failed to start,
      publishes to the alarm topic (and counts as ``TriggeredRules`` for the alarm).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: InfraSettings,
        network: Network,
        bucket: BundleBucket,
        identity: ClientIdentity,
        environment: Mapping[str, str],
        alert_topic: sns.ITopic,
        build_context: Path = REPO_ROOT,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=network.vpc, container_insights_v2=ecs.ContainerInsights.DISABLED
        )
        acknowledge(
            self.cluster,
            "AwsSolutions-ECS4",
            "The cluster runs a short batch task a few times a month; the task's logs and the failure rule cover "
            "it, and Container Insights would bill custom metrics around the clock.",
        )
        self.log_group = log_group(self, "Logs", settings)
        arm = settings.indexer_architecture == "arm64"
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=settings.indexer_cpu,
            memory_limit_mib=settings.indexer_memory_mib,
            task_role=identity.role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64 if arm else ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.image = self._image(settings, build_context, arm)
        self.container = self.task_definition.add_container(
            CONTAINER_NAME,
            container_name=CONTAINER_NAME,
            image=self.image,
            logging=ecs.LogDrivers.aws_logs(stream_prefix=CONTAINER_NAME, log_group=self.log_group),
            environment=dict(environment),
        )
        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            "The variables are endpoints, an alias and a secret's ARN, not secrets: the Redis AUTH token is read "
            "from Secrets Manager at run time by the task role.",
        )
        # CDK's execution-role policy: ecr:GetAuthorizationToken has no resource-level permissions.
        if self.task_definition.execution_role is not None:
            acknowledge(
                self.task_definition.execution_role,
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken supports only '*' (CDK's execution-role policy; pulls are scoped "
                "to the asset repository).",
            )

        self.dead_letters = sqs.Queue(
            self,
            "UndeliveredTriggers",
            enforce_ssl=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the indexer trigger; it is alarmed on, not redriven.",
        )

        self.trigger = events.Rule(
            self,
            "OnCatalogUpload",
            description="Run the indexer when a bundle manifest or a catalog delta is uploaded",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket.bucket_name]},
                    "object": {
                        "key": events.Match.any_of(
                            events.Match.wildcard(BUNDLE_MANIFEST_PATTERN), events.Match.prefix(DELTAS_PREFIX)
                        )
                    },
                },
            ),
        )
        self.trigger.add_target(
            targets.EcsTask(
                cluster=self.cluster,
                task_definition=self.task_definition,
                launch_type=ecs.LaunchType.FARGATE,
                platform_version=ecs.FargatePlatformVersion.LATEST,
                subnet_selection=network.private_subnets,
                security_groups=[identity.security_group],
                assign_public_ip=False,
                container_overrides=[
                    targets.ContainerOverride(
                        container_name=CONTAINER_NAME,
                        environment=[
                            targets.TaskEnvironmentVariable(
                                name="RECS_S3_BUCKET", value=events.EventField.from_path("$.detail.bucket.name")
                            ),
                            targets.TaskEnvironmentVariable(
                                name="RECS_S3_KEY", value=events.EventField.from_path("$.detail.object.key")
                            ),
                        ],
                    )
                ],
                retry_attempts=3,
                max_event_age=Duration.hours(2),
                dead_letter_queue=self.dead_letters,
            )
        )

        acknowledge(
            self.task_definition,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:*:task/{ref(self.cluster)}/*]",
            "CDK's EventBridge role may tag the tasks it starts; task ids are generated at run time, so the "
            "resource is every task of this cluster.",
        )

        self.failures = events.Rule(
            self,
            "OnTaskFailure",
            description="An indexer task stopped with a non-zero exit code or failed to start",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Task State Change"],
                detail={
                    "clusterArn": [self.cluster.cluster_arn],
                    "lastStatus": ["STOPPED"],
                    "$or": [
                        {"stopCode": ["TaskFailedToStart"]},
                        {"containers": {"name": [CONTAINER_NAME], "exitCode": [{"anything-but": 0}]}},
                    ],
                },
            ),
        )
        self.failures.add_target(
            targets.SnsTopic(
                alert_topic,
                message=events.RuleTargetInput.from_text(
                    f"Indexer task {events.EventField.from_path('$.detail.taskArn')} failed: "
                    f"{events.EventField.from_path('$.detail.stoppedReason')}"
                ),
            )
        )

    def _image(self, settings: InfraSettings, build_context: Path, arm: bool) -> ecs.ContainerImage:
        """Built from ``indexer/Dockerfile`` at deploy (needs Docker), or the ECR image ``indexerImageUri``."""
        uri = settings.indexer_image_uri
        if uri is None:
            return ecs.ContainerImage.from_asset(
                str(build_context),
                file=DOCKERFILE,
                exclude=DOCKER_CONTEXT_EXCLUDES,
                platform=ecr_assets.Platform.LINUX_ARM64 if arm else ecr_assets.Platform.LINUX_AMD64,
            )
        found = ECR_IMAGE_RE.match(uri)
        assert found is not None  # InfraSettings.validate checked the form
        repository = ecr.Repository.from_repository_attributes(
            self,
            "ImageRepository",
            repository_name=found["repository"],
            repository_arn=Stack.of(self).format_arn(
                service="ecr", region=found["region"], account=found["account"],
                resource="repository", resource_name=found["repository"],
            ),
        )
        return ecs.ContainerImage.from_ecr_repository(repository, tag=found["tag"])

    def metric_failed_runs(self, *, period: Duration) -> cloudwatch.Metric:
        """Indexer tasks that failed (times the failure rule matched)."""
        return cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="TriggeredRules",
            dimensions_map={"RuleName": self.failures.rule_name},
            statistic="Sum",
            period=period,
        )

    def metric_undelivered_triggers(self, *, period: Duration) -> cloudwatch.Metric:
        """Upload events that could not start the task (messages waiting in the dead-letter queue)."""
        return self.dead_letters.metric_approximate_number_of_messages_visible(period=period, statistic="Maximum")
