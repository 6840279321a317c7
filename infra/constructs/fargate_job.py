"""A Fargate job that EventBridge starts: the part the indexer and the retraining task share.

    add_trigger(event pattern | schedule) ─> RunTask (3 retries, 2 hours) ─> the task, in the private subnets
                                         └─> (could not start it) dead-letter queue
    the task stops with an unexpected exit code, or does not start ─> failure rule ─> alarm topic

Each job keeps what is its own: its triggers' patterns, its environment, its permissions and its alarms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from infra.constructs.clients import ClientIdentity
from infra.constructs.common import log_group
from infra.constructs.network import Network
from infra.nag import acknowledge, ref


@dataclass(frozen=True)
class JobImage:
    """The container image: built at deploy (needs Docker) from ``dockerfile`` as a CDK asset whose context is
    ``build_context`` minus ``excludes`` (.dockerignore rules, '!' re-including: synth copies and hashes the context,
    so leaving out everything the Dockerfile does not copy keeps synth fast and an unrelated edit from rebuilding the
    image), or, when ``uri`` is set, that prebuilt ECR image (the form ``InfraSettings`` validated)."""

    dockerfile: str
    excludes: Sequence[str]
    build_context: Path = REPO_ROOT
    uri: str | None = None


class FargateJob(Construct):
    """An ECS cluster (or ``cluster``), a Fargate task definition with one container ``name`` (environment
    ``environment``, logs to its own log group, role and security group of ``identity``), a dead-letter queue for
    the runs EventBridge could not start, and the ``failures`` rule: a task of the cluster that stopped with an exit
    code of that container outside ``expected_exit_codes``, or failed to start, publishes to ``alert_topic`` (and
    counts as ``TriggeredRules``). The triggers are added with ``add_trigger``.

    ``title`` names the job in the failure message ("<title> task <arn> failed: <reason><failure_note>");
    ``cluster_reason`` and ``environment_reason`` are the job's own cdk-nag reasons (no Container Insights; plain
    environment variables). ``dead_letters_id`` is the queue's construct id (each job keeps the logical id it had).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: InfraSettings,
        network: Network,
        identity: ClientIdentity,
        name: str,
        title: str,
        cpu: int,
        memory_mib: int,
        image: JobImage,
        environment: Mapping[str, str],
        environment_reason: str,
        alert_topic: sns.ITopic,
        failure_description: str,
        arm64: bool = False,
        cluster: ecs.Cluster | None = None,
        cluster_reason: str = "",
        expected_exit_codes: Sequence[int] = (0,),
        failure_note: str = "",
        dead_letters_id: str = "UndeliveredTriggers",
        command: Sequence[str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._network = network
        self._identity = identity
        if cluster is None:
            cluster = ecs.Cluster(
                self, "Cluster", vpc=network.vpc, container_insights_v2=ecs.ContainerInsights.DISABLED
            )
            acknowledge(cluster, "AwsSolutions-ECS4", cluster_reason)
        self.cluster = cluster
        self.log_group = log_group(self, "Logs", settings)
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=cpu,
            memory_limit_mib=memory_mib,
            task_role=identity.role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64 if arm64 else ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.image = self._image(image, arm64)
        self.container = self.task_definition.add_container(
            name,
            container_name=name,
            image=self.image,
            logging=ecs.LogDrivers.aws_logs(stream_prefix=name, log_group=self.log_group),
            environment=dict(environment),
            command=list(command) if command else None,
        )
        acknowledge(self.task_definition, "AwsSolutions-ECS2", environment_reason)
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
            dead_letters_id,
            enforce_ssl=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions-SQS3",
            f"This queue is itself the dead-letter queue of the {title.lower()} task's triggers; it is alarmed on, "
            "not redriven.",
        )
        self.triggers: list[events.Rule] = []

        ok = list(expected_exit_codes)
        self.failures = events.Rule(
            self,
            "OnTaskFailure",
            description=failure_description,
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Task State Change"],
                detail={
                    "clusterArn": [self.cluster.cluster_arn],
                    "lastStatus": ["STOPPED"],
                    "$or": [
                        {"stopCode": ["TaskFailedToStart"]},
                        {"containers": {"name": [name], "exitCode": [{"anything-but": ok[0] if len(ok) == 1 else ok}]}},
                    ],
                },
            ),
        )
        self.failures.add_target(
            targets.SnsTopic(
                alert_topic,
                message=events.RuleTargetInput.from_text(
                    f"{title} task {events.EventField.from_path('$.detail.taskArn')} failed: "
                    f"{events.EventField.from_path('$.detail.stoppedReason')}{failure_note}"
                ),
            )
        )

    def add_trigger(
        self,
        construct_id: str,
        *,
        description: str,
        event_pattern: events.EventPattern | None = None,
        schedule: events.Schedule | None = None,
        event_environment: Mapping[str, str] | None = None,
    ) -> events.Rule:
        """A rule that runs the task on ``event_pattern`` or ``schedule``: in the private subnets with the job's
        security group and no public IP, retried 3 times within 2 hours, then sent to the dead-letter queue.
        ``event_environment`` maps container variables to JSON paths in the event (a container override)."""
        rule = events.Rule(self, construct_id, description=description, event_pattern=event_pattern, schedule=schedule)
        overrides = None
        if event_environment:
            overrides = [
                targets.ContainerOverride(
                    container_name=self.container.container_name,
                    environment=[
                        targets.TaskEnvironmentVariable(name=variable, value=events.EventField.from_path(path))
                        for variable, path in event_environment.items()
                    ],
                )
            ]
        rule.add_target(
            targets.EcsTask(
                cluster=self.cluster,
                task_definition=self.task_definition,
                launch_type=ecs.LaunchType.FARGATE,
                platform_version=ecs.FargatePlatformVersion.LATEST,
                subnet_selection=self._network.private_subnets,
                security_groups=[self._identity.security_group],
                assign_public_ip=False,
                container_overrides=overrides,
                retry_attempts=3,
                max_event_age=Duration.hours(2),
                dead_letter_queue=self.dead_letters,
            )
        )
        if not self.triggers:
            acknowledge(
                self.task_definition,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:*:task/{ref(self.cluster)}/*]",
                "CDK's EventBridge role may tag the tasks it starts; task ids are generated at run time, so the "
                "resource is every task of this cluster.",
            )
        self.triggers.append(rule)
        return rule

    def _image(self, image: JobImage, arm64: bool) -> ecs.ContainerImage:
        if image.uri is None:
            return ecs.ContainerImage.from_asset(
                str(image.build_context),
                file=image.dockerfile,
                exclude=list(image.excludes),
                platform=ecr_assets.Platform.LINUX_ARM64 if arm64 else ecr_assets.Platform.LINUX_AMD64,
            )
        found = ECR_IMAGE_RE.match(image.uri)
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
        """Tasks that failed (times the failure rule matched)."""
        return cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="TriggeredRules",
            dimensions_map={"RuleName": self.failures.rule_name},
            statistic="Sum",
            period=period,
        )

    def metric_undelivered_triggers(self, *, period: Duration) -> cloudwatch.Metric:
        """Triggers that could not start the task (messages waiting in the dead-letter queue)."""
        return self.dead_letters.metric_approximate_number_of_messages_visible(period=period, statistic="Maximum")
