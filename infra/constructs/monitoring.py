"""Alarms, the alarm topic, and the operations dashboard."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_opensearchservice as opensearch
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.config import InfraSettings
from infra.constructs.indexer import IndexerTask

FIVE_MINUTES = Duration.minutes(5)


class AlertTopic(Construct):
    """The SNS topic every alarm and the indexer-failure rule publish to (KMS-encrypted, TLS only).

    A customer managed key is needed because CloudWatch and EventBridge cannot publish to a topic
    encrypted with the AWS managed ``aws/sns`` key. ``alarmEmail`` subscribes an address.
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: InfraSettings) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description="Encrypts the recommender's alarm topic",
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmPublishers",
                principals=[
                    iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                    iam.ServicePrincipal("events.amazonaws.com"),
                ],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy '*' means this key
            )
        )
        self.topic = sns.Topic(
            self, "Topic", display_name=f"{settings.prefix} recommender alarms", master_key=self.key, enforce_ssl=True
        )
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))


class Monitoring(Construct):
    """Alarms on what users feel and on the indexer, plus one dashboard.

    Alarms: API 5xx rate, API p99 latency, Lambda throttles, OpenSearch cluster red, indexer run
    failed (a task stopped with a non-zero exit or failed to start), indexer not started (events in
    the trigger's dead-letter queue).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: InfraSettings,
        api: apigw.RestApi,
        alias: lambda_.Alias,
        domain: opensearch.Domain,
        indexer: IndexerTask,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        action = cloudwatch_actions.SnsAction(topic)
        requests = api.metric_count(period=FIVE_MINUTES, statistic="Sum")
        server_errors = api.metric_server_error(period=FIVE_MINUTES, statistic="Sum")
        client_errors = api.metric_client_error(period=FIVE_MINUTES, statistic="Sum")
        error_rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, errors / requests, 0)",
            using_metrics={"errors": server_errors, "requests": requests},
            label="5xx rate",
            period=FIVE_MINUTES,
        )
        latency_p99 = api.metric_latency(period=FIVE_MINUTES, statistic="p99")
        latency_p50 = api.metric_latency(period=FIVE_MINUTES, statistic="p50")
        throttles = alias.metric_throttles(period=Duration.minutes(1), statistic="Sum")
        spillover = alias.metric(
            "ProvisionedConcurrencySpilloverInvocations", period=Duration.minutes(1), statistic="Sum"
        )
        pc_utilization = alias.metric(
            "ProvisionedConcurrencyUtilization", period=Duration.minutes(1), statistic="Maximum"
        )
        concurrency = alias.metric("ConcurrentExecutions", period=Duration.minutes(1), statistic="Maximum")
        duration_p99 = alias.metric_duration(period=FIVE_MINUTES, statistic="p99")

        self.alarms: dict[str, cloudwatch.Alarm] = {}

        def alarm(name: str, metric: cloudwatch.IMetric, threshold: float, description: str, periods: int = 1) -> None:
            created = cloudwatch.Alarm(
                self,
                name,
                alarm_description=description,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            created.add_alarm_action(action)
            self.alarms[name] = created

        alarm("Api5xxRate", error_rate, settings.alarm_5xx_rate,
              f"At least {settings.alarm_5xx_rate:.1%} of API requests answered 5xx over 5 minutes")
        alarm("ApiLatencyP99", latency_p99, settings.alarm_p99_latency_ms,
              f"API p99 latency at or above {settings.alarm_p99_latency_ms} ms for 15 minutes", periods=3)
        alarm("LambdaThrottles", throttles, 1, "The recommender's live alias throttled invocations")
        alarm("OpenSearchClusterRed", domain.metric_cluster_status_red(period=Duration.minutes(1)), 1,
              "The OpenSearch domain is red: a primary shard is unassigned")
        alarm("IndexerRunFailed", indexer.metric_failed_runs(period=FIVE_MINUTES), 1,
              "An indexer task stopped with a non-zero exit code or failed to start")
        alarm("IndexerNotStarted", indexer.metric_undelivered_triggers(period=FIVE_MINUTES), 1,
              "EventBridge could not start the indexer task for an S3 upload (see its dead-letter queue)")

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{settings.prefix}-recommender")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="API requests and errors", left=[requests, client_errors, server_errors],
                                   width=12),
            cloudwatch.GraphWidget(title="API latency (ms)", left=[latency_p50, latency_p99], width=12),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Concurrency (live alias)", left=[concurrency, spillover],
                                   right=[pc_utilization], width=12),
            cloudwatch.GraphWidget(title="Lambda duration p99 (ms) and throttles", left=[duration_p99],
                                   right=[throttles], width=12),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="OpenSearch",
                left=[domain.metric_search_latency(), domain.metric_cpu_utilization()],
                right=[domain.metric_jvm_memory_pressure()],
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=12),
        )
