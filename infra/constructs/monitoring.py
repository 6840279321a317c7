"""Alarms, the alarm topic, and the operations dashboard."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
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
from infra.constructs.cache import RedisCache
from infra.constructs.indexer import IndexerTask

FIVE_MINUTES = Duration.minutes(5)
ONE_MINUTE = Duration.minutes(1)


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
        stack = Stack.of(self)
        # Publishing to an encrypted topic needs the key (Amazon SNS Developer Guide, "Enable compatibility between
        # event sources from AWS services and encrypted topics",
        # https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services): CloudWatch
        # here, conditioned on the alarm's account; EventBridge gets its grant from CDK's SnsTopic target (the indexer's
        # failure rule; its KMS requests carry no aws:SourceAccount, so that one cannot be conditioned).
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy '*' means this key
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        self.topic = sns.Topic(
            self, "Topic", display_name=f"{settings.prefix} recommender alarms", master_key=self.key, enforce_ssl=True
        )
        # enforce_ssl makes CDK attach a topic policy, which replaces SNS's default one: CloudWatch alarm actions are
        # then refused ("not authorized to perform: SNS:Publish") unless the policy lets cloudwatch.amazonaws.com
        # publish, scoped to this account against the confused deputy (Amazon SNS Developer Guide, "Example cases for
        # Amazon SNS access control", aws:SourceAccount: https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html;
        # Amazon CloudWatch User Guide, "Using Amazon CloudWatch alarms", alarm actions to SNS). The indexer's failure
        # rule gets its own statement from CDK's SnsTopic target.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))


class Monitoring(Construct):
    """Alarms on what users feel, on the stateful parts and on the jobs, plus one dashboard. Every alarm notifies
    the alarm topic (tests/infra/test_template_rules.py's ``required_alarms`` lists what is watched). The
    provisioned-concurrency metrics (spillover, utilization) are graphed only with ``provisioned_concurrency``; the
    forecaster's errors are alarmed only when there is one.
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
        cache: RedisCache,
        indexer: IndexerTask,
        topic: sns.ITopic,
        forecaster: lambda_.IFunction | None = None,
        provisioned_concurrency: bool = True,
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
        at_least = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        at_most = cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD

        def alarm(
            name: str,
            metric: cloudwatch.IMetric,
            threshold: float,
            description: str,
            periods: int = 1,
            comparison: cloudwatch.ComparisonOperator = at_least,
        ) -> None:
            created = cloudwatch.Alarm(
                self,
                name,
                alarm_description=description,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                comparison_operator=comparison,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            created.add_alarm_action(action)
            self.alarms[name] = created

        # --- what users feel
        alarm("Api5xxRate", error_rate, settings.alarm_5xx_rate,
              f"At least {settings.alarm_5xx_rate:.1%} of API requests answered 5xx over 5 minutes")
        alarm("ApiLatencyP99", latency_p99, settings.alarm_p99_latency_ms,
              f"API p99 latency at or above {settings.alarm_p99_latency_ms} ms for 15 minutes", periods=3)
        alarm("LambdaThrottles", throttles, 1, "The recommender's live alias throttled invocations")
        alarm("RecommenderErrors", alias.metric_errors(period=FIVE_MINUTES, statistic="Sum"), 1,
              "The recommender function failed (an unhandled error or a timeout) in the last 5 minutes")

        # --- OpenSearch: the thresholds of "Recommended CloudWatch alarms for Amazon OpenSearch Service"
        # (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/cloudwatch-alarms.html); free storage
        # at 25% of a node's volume as that page advises (a full rebuild holds two copies of the index for a while).
        def domain_metric(name: str, statistic: str, period: Duration = ONE_MINUTE) -> cloudwatch.Metric:
            return domain.metric(name, statistic=statistic, period=period)

        free_storage_mib = settings.opensearch_volume_gib * 1024 // 4
        alarm("OpenSearchClusterRed", domain_metric("ClusterStatus.red", "Maximum"), 1,
              "The OpenSearch domain is red: a primary shard is unassigned")
        alarm("OpenSearchClusterYellow", domain_metric("ClusterStatus.yellow", "Maximum"), 1,
              "The OpenSearch domain is yellow: a replica shard is unassigned (5 minutes)", periods=5)
        alarm("OpenSearchFreeStorage", domain_metric("FreeStorageSpace", "Minimum"), free_storage_mib,
              f"A data node has at most {free_storage_mib} MiB (25%) of its volume free", comparison=at_most)
        alarm("OpenSearchWritesBlocked", domain_metric("ClusterIndexWritesBlocked", "Maximum", FIVE_MINUTES), 1,
              "The OpenSearch domain is blocking writes (the indexer cannot load)")
        alarm("OpenSearchJvmPressure", domain_metric("JVMMemoryPressure", "Maximum"), 95,
              "OpenSearch JVM memory pressure at or above 95% for 3 minutes", periods=3)
        alarm("OpenSearchKnnCircuitBreaker", domain_metric("KNNCircuitBreakerTriggered", "Maximum"), 1,
              "The k-NN circuit breaker tripped: native memory for vector graphs is full, searches may fail")

        # --- Redis, per node: memory, evictions, engine CPU ("Monitoring use with CloudWatch Metrics", ElastiCache
        # for Redis: https://docs.aws.amazon.com/AmazonElastiCache/latest/red-ug/CacheMetrics.WhichShouldIMonitor.html)
        for number, node_id in enumerate(cache.node_ids, start=1):
            def redis_metric(name: str, statistic: str, node: str = node_id) -> cloudwatch.Metric:
                return cloudwatch.Metric(namespace="AWS/ElastiCache", metric_name=name, statistic=statistic,
                                         period=FIVE_MINUTES, dimensions_map={"CacheClusterId": node})

            alarm(f"RedisMemory{number}", redis_metric("DatabaseMemoryUsagePercentage", "Maximum"), 90,
                  f"Redis node {node_id} uses at least 90% of its memory for 15 minutes", periods=3)
            alarm(f"RedisEvictions{number}", redis_metric("Evictions", "Sum"), 1,
                  f"Redis node {node_id} evicted keys for 15 minutes: the cache is too small", periods=3)
            alarm(f"RedisEngineCpu{number}", redis_metric("EngineCPUUtilization", "Maximum"), 90,
                  f"Redis node {node_id}'s engine thread at or above 90% CPU for 15 minutes", periods=3)

        # --- the jobs
        alarm("IndexerRunFailed", indexer.job.metric_failed_runs(period=FIVE_MINUTES), 1,
              "An indexer task stopped with a non-zero exit code or failed to start")
        alarm("IndexerNotStarted", indexer.job.metric_undelivered_triggers(period=FIVE_MINUTES), 1,
              "EventBridge could not start the indexer task for an S3 upload (see its dead-letter queue)")
        if forecaster is not None:
            alarm("ForecasterErrors", forecaster.metric_errors(period=Duration.hours(1), statistic="Sum"), 1,
                  "The predictive-scaling forecaster failed in the last hour: the alias keeps its last plan")

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{settings.prefix}-recommender")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="API requests and errors", left=[requests, client_errors, server_errors],
                                   width=12),
            cloudwatch.GraphWidget(title="API latency (ms)", left=[latency_p50, latency_p99], width=12),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Concurrency (live alias)", left=[concurrency, spillover],
                                   right=[pc_utilization], width=12)
            if provisioned_concurrency
            else cloudwatch.GraphWidget(title="Concurrency (live alias)", left=[concurrency], width=12),
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
