"""Retraining as a Fargate task: an upload under ``ratings/`` or an optional schedule runs it, the gate decides,
a publish under ``bundles/`` starts the indexer, the report goes to the alarm topic.

    ratings/ upload ─┐
    retrainSchedule ─┴─> retrain task ──(passes the gate)──> bundles/<v>/ files, manifest.json last
                                      └─> bundles/<v>/retrain-report.{json,md}, SNS (report summary)
    bundles/<v>/manifest.json ─> the indexer task (infra/constructs/indexer.py) ─> alias ─> the Lambda follows
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.config import REPO_ROOT, InfraSettings
from infra.constructs.bundle_bucket import BUNDLES_PREFIX, BundleBucket
from infra.constructs.clients import ClientIdentity
from infra.constructs.fargate_job import FargateJob, JobImage
from infra.constructs.network import Network
from infra.nag import acknowledge, ref

CONTAINER_NAME = "retrain"
DOCKERFILE = "training/Dockerfile"
RATINGS_PREFIX = "ratings/"
"""Where the ratings and movies are uploaded (a MovieLens layout); any upload under it starts a retraining run."""
DOCKER_CONTEXT_EXCLUDES = ["*", "!core", "!training", "**/__pycache__", "**/*.pyc"]
"""The build context is the repository root minus everything the Dockerfile does not copy (see the indexer's)."""
METRIC_NAMESPACE = "MovieRecs/Retrain"
STREAK_METRIC = "NotPublishedStreak"
REPORTED_EXIT_CODES = (0, 3, 4, 75)
"""Exit statuses of runs that end as designed: published, held back, unchanged data, another run held the lock.
Any other stop (a failure, an out-of-memory kill, a task that did not start) is published by the failure rule."""


class RetrainTask(Construct):
    """The retraining Fargate job (``job``: its own ECS cluster, the task definition with the image from
    ``training/Dockerfile`` or ``retrainImageUri``, a dead-letter queue, the failure rule), its triggers (uploads
    under ``ratings/``; ``retrainSchedule``), and the alarms on runs in a row that published nothing and on runs
    that could not start. The role's S3 rights: read ``ratings/`` and ``bundles/`` (the live bundle and earlier
    reports), create objects under ``bundles/`` only with ``If-None-Match`` (never replace one).
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
        # "Default" leaves the job out of its resources' logical ids: they are those of this construct's children.
        self.job = FargateJob(
            self,
            "Default",
            settings=settings,
            network=network,
            identity=identity,
            name=CONTAINER_NAME,
            title="Retraining",
            cpu=settings.retrain_cpu,
            memory_mib=settings.retrain_memory_mib,
            image=JobImage(DOCKERFILE, DOCKER_CONTEXT_EXCLUDES, build_context, settings.retrain_image_uri),
            environment={
                **environment,
                "RECS_RETRAIN_DATA": f"s3://{bucket.bucket_name}/{RATINGS_PREFIX}",
                "RECS_RETRAIN_BUNDLE_ROOT": f"s3://{bucket.bucket_name}/{BUNDLES_PREFIX}",
                "RECS_RETRAIN_TOLERANCE": str(settings.retrain_tolerance),
                "RECS_RETRAIN_TOPIC_ARN": alert_topic.topic_arn,
                # a retrain started while another runs exits 75 at once (an upload of two files starts two)
                "RECS_RETRAIN_LOCK_WAIT_SECONDS": "0",
            },
            environment_reason="The variables are locations, endpoints, a tolerance and ARNs, not secrets: the Redis "
                               "AUTH token is read from Secrets Manager at run time by the task role.",
            cluster_reason="The cluster runs one batch task per retraining; its logs, the report, the failure rule and "
                           "the streak alarm cover it, and Container Insights would bill custom metrics around the "
                           "clock.",
            alert_topic=alert_topic,
            failure_description="A retraining task stopped with another status than 0 published, 3 held back, "
                                "4 unchanged or 75 locked out, or did not start",
            expected_exit_codes=REPORTED_EXIT_CODES,
            failure_note=f" (its report, if it got that far, is under s3://{bucket.bucket_name}/{BUNDLES_PREFIX}; "
                         "the logs are in the retraining log group)",
            dead_letters_id="UndeliveredRuns",
            command=_model_flags(settings.retrain_args),
        )
        self._grant_bucket(identity.role, bucket)
        alert_topic.grant_publish(identity.role)  # the report's summary; the topic is KMS-encrypted
        acknowledge(
            identity.role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "Publishing to the KMS-encrypted alarm topic needs kms:GenerateDataKey* on its key (CDK's grantPublish; "
            "the resource is that one key).",
        )

        self.on_upload = self.job.add_trigger(
            "OnRatingsUpload",
            description="Retrain when ratings or movies are uploaded under ratings/",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [bucket.bucket_name]},
                        "object": {"key": events.Match.prefix(RATINGS_PREFIX)}},
            ),
        )
        self.schedule: events.Rule | None = None
        if settings.retrain_schedule:
            self.schedule = self.job.add_trigger(
                "OnSchedule",
                description=f"Retrain on a schedule: {settings.retrain_schedule}",
                schedule=events.Schedule.expression(settings.retrain_schedule),
            )

        # Every run that wrote a report prints its summary as the last stdout line (JSON), with the number of runs
        # in a row, this one included, that published nothing (held back or failed): that becomes a metric.
        self.streak_filter = logs.MetricFilter(
            self,
            "NotPublishedStreak",
            log_group=self.job.log_group,
            # a number only: the summary of a run that wrote no report (unchanged data) has null there
            filter_pattern=logs.FilterPattern.number_value("$.not_published_streak", ">=", 0),
            metric_namespace=METRIC_NAMESPACE,
            metric_name=STREAK_METRIC,
            metric_value="$.not_published_streak",
        )
        self.streak_alarm = cloudwatch.Alarm(
            self,
            "NotPublishedAlarm",
            alarm_description=f"{settings.retrain_alarm_after} or more retraining runs in a row published no model "
                              "(held back by the gate, or failed): see the reports under bundles/",
            metric=self.streak_filter.metric(statistic="Maximum", period=Duration.hours(1)),
            threshold=settings.retrain_alarm_after,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.not_started_alarm = cloudwatch.Alarm(
            self,
            "NotStartedAlarm",
            alarm_description="EventBridge could not start the retraining task (see its dead-letter queue)",
            metric=self.job.metric_undelivered_triggers(period=Duration.minutes(5)),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for alarm in (self.streak_alarm, self.not_started_alarm):
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(alert_topic))

    def _grant_bucket(self, role: iam.IRole, bucket: BundleBucket) -> None:
        """Read ``ratings/`` and ``bundles/``; create (never replace) objects under ``bundles/``."""
        b = bucket.bucket
        policy = iam.Policy(
            self,
            "BucketAccess",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    sid="ReadRatingsAndBundles",
                    actions=["s3:GetObject"],
                    resources=[b.arn_for_objects(f"{RATINGS_PREFIX}*"), b.arn_for_objects(f"{BUNDLES_PREFIX}*")],
                ),
                iam.PolicyStatement(
                    sid="ListRatingsAndBundles",
                    actions=["s3:ListBucket"],
                    resources=[b.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{RATINGS_PREFIX}*", f"{BUNDLES_PREFIX}*"]}},
                ),
                # Conditional writes only (Amazon S3 User Guide, "Enforce conditional writes on Amazon S3 buckets"):
                # a PUT without If-None-Match is denied, and with it S3 refuses a key that exists, so the task can
                # add a new bundles/<version>/ but never replace a published bundle or report.
                iam.PolicyStatement(
                    sid="CreateNewBundleObjects",
                    actions=["s3:PutObject"],
                    resources=[b.arn_for_objects(f"{BUNDLES_PREFIX}*")],
                    conditions={"Null": {"s3:if-none-match": "false"}},
                ),
            ],
        )
        for prefix in (RATINGS_PREFIX, BUNDLES_PREFIX):
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::{ref(b, 'Arn')}/{prefix}*]",
                "Object keys under this prefix are not known in advance (data file names, model versions); access "
                "is limited to the prefix, and writes to creating new objects.",
            )


def _model_flags(text: str | None) -> list[str] | None:
    """``retrainArgs`` as the container command's arguments (after the image's entry point), checked already."""
    if not text:
        return None
    from training.retrain_cli import check_model_flags

    return check_model_flags(text)
