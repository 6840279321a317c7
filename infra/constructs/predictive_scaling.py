"""Predictive scaling (issue 6): the scheduled forecaster Lambda that writes the alias's scheduled actions.

Usage in the serving stack (``recommender`` is the ``RecommenderFunction`` construct)::

    PredictiveScaling(
        self,
        "PredictiveScaling",
        function_name=recommender.function.function_name,
        alias_name=recommender.alias.alias_name,          # "live"
        scalable_target_resource_id=recommender.scalable_resource_id,  # "function:<name>:live"
        scalable_target=recommender.scalable_target,      # tagged here, see below
        min_capacity=settings.provisioned_concurrency_min,
        max_capacity=settings.provisioned_concurrency_max,
        log_retention=retention(settings.log_retention_days),
    )

What it creates:

* a Python 3.12 Lambda (arm64, 256 MB, 60 s) running ``scaling.lambda_handler.handler`` from an
  asset holding only the ``scaling`` package (``infra.forecaster_asset.build_forecaster_asset``);
* an EventBridge rule invoking it every hour at minute 5 (``schedule`` to change it), with 2
  retries and a 1-hour maximum event age;
* its log group with ``log_retention``, deleted with the stack;
* its role, least privilege: write to its own log group; ``cloudwatch:GetMetricData`` and the two
  ``application-autoscaling:Describe*`` calls (no resource-level permissions exist for those, so
  ``*``); ``PutScheduledAction``/``DeleteScheduledAction`` only on scalable targets tagged
  ``recs:predictive-scaling = <resource id>`` (attribute-based access: a scalable target's ARN is
  not known to CloudFormation). Passing ``scalable_target`` adds that tag to it; otherwise tag the
  target yourself with ``PredictiveScaling.TAG_KEY`` / ``self.tag_value``.

The forecaster's settings (bounds, headroom, quantile, lead) become ``RECS_SCALING_*`` variables
and are validated at synth time with the same rules as at run time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack, Tags, Token
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from infra.forecaster_asset import HANDLER, build_forecaster_asset
from infra.nag import acknowledge
from scaling.settings import ScalingSettings

DEFAULT_SCHEDULE_EXPRESSION = "cron(5 * * * ? *)"


class PredictiveScaling(Construct):
    """The forecaster: reads the alias's CloudWatch history hourly and writes one scheduled
    ``MinCapacity`` action per hour of the next day on the alias's scalable target.

    :param function_name: the serving function's name (a token is fine).
    :param alias_name: its alias carrying provisioned concurrency (``live``).
    :param scalable_target_resource_id: ``function:<name>:<alias>``, the scalable target's resource id.
    :param min_capacity: floor of every planned hour (raised to 1 while there is traffic).
    :param max_capacity: ceiling of every planned hour (also capped at the target's MaxCapacity at run time).
    :param headroom: multiplier on the required concurrency (``RECS_SCALING_HEADROOM``).
    :param quantile: upper quantile of the forecast (``RECS_SCALING_QUANTILE``).
    :param lead_minutes: scheduled actions fire this long before their hour.
    :param scalable_target: the scalable target construct (L2 or L1) to tag for the IAM condition.
    :param schedule: when the forecaster runs (default: every hour at minute 5, UTC).
    :param log_retention: retention of the forecaster's log group.
    :param dry_run: plan and log only, write no action (``RECS_SCALING_DRY_RUN``), e.g. for a trial week.
    :param asset_dir: where to build the code asset (default: a fresh temporary directory).
    :param environment: extra ``RECS_SCALING_*`` variables (they win over the ones above).
    """

    TAG_KEY = "recs:predictive-scaling"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_name: str,
        alias_name: str,
        scalable_target_resource_id: str,
        min_capacity: int = 1,
        max_capacity: int = 100,
        headroom: float | None = None,
        quantile: float | None = None,
        lead_minutes: int | None = None,
        scalable_target: IConstruct | None = None,
        schedule: events.Schedule | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        dry_run: bool = False,
        asset_dir: Path | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # The same validation as at run time (names and ids may be tokens here, so they are left out).
        settings = ScalingSettings(
            alias=alias_name if not _is_token(alias_name) else "live",
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            dry_run=dry_run,
        ).with_overrides(headroom=headroom, quantile=quantile, lead_minutes=lead_minutes)
        stack = Stack.of(self)
        self.tag_value = scalable_target_resource_id
        if scalable_target is not None:
            Tags.of(scalable_target).add(self.TAG_KEY, self.tag_value)

        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Predictive scaling forecaster: reads Lambda metrics, writes the alias's scheduled actions",
            inline_policies={
                "Forecaster": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            sid="WriteOwnLogs",
                            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                            resources=[self.log_group.log_group_arn],
                        ),
                        iam.PolicyStatement(
                            sid="ReadMetrics",
                            actions=["cloudwatch:GetMetricData"],
                            resources=["*"],  # GetMetricData has no resource-level permissions
                        ),
                        iam.PolicyStatement(
                            sid="DescribeScaling",
                            actions=[
                                "application-autoscaling:DescribeScalableTargets",
                                "application-autoscaling:DescribeScheduledActions",
                            ],
                            resources=["*"],  # Describe* have no resource-level permissions
                        ),
                        iam.PolicyStatement(
                            sid="WriteScheduledActionsOnTheAlias",
                            actions=[
                                "application-autoscaling:PutScheduledAction",
                                "application-autoscaling:DeleteScheduledAction",
                            ],
                            resources=[
                                stack.format_arn(
                                    service="application-autoscaling",
                                    resource="scalable-target",
                                    resource_name="*",
                                )
                            ],
                            conditions={"StringEquals": {f"aws:ResourceTag/{self.TAG_KEY}": self.tag_value}},
                        ),
                    ]
                )
            },
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:GetMetricData and application-autoscaling:Describe* support no resource-level "
            "permissions; they only read.",
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:application-autoscaling:<AWS::Region>:"
            "<AWS::AccountId>:scalable-target/*]",
            "A scalable target's ARN is not available to CloudFormation; Put/DeleteScheduledAction are limited "
            "to the alias's target by the aws:ResourceTag condition instead.",
        )

        variables = {
            "RECS_SCALING_FUNCTION_NAME": function_name,
            "RECS_SCALING_ALIAS": alias_name,
            "RECS_SCALING_RESOURCE_ID": scalable_target_resource_id,
            "RECS_SCALING_MIN_CAPACITY": str(settings.min_capacity),
            "RECS_SCALING_MAX_CAPACITY": str(settings.max_capacity),
            "RECS_SCALING_HEADROOM": f"{settings.headroom:g}",
            "RECS_SCALING_QUANTILE": f"{settings.quantile:g}",
            "RECS_SCALING_LEAD_MINUTES": str(settings.lead_minutes),
            "RECS_SCALING_ACTION_PREFIX": settings.action_prefix,
            "RECS_SCALING_DRY_RUN": "true" if dry_run else "false",
        }
        variables.update(environment or {})
        asset = build_forecaster_asset(asset_dir or Path(tempfile.mkdtemp(prefix="recs-forecaster-asset-")))
        self.function = lambda_.Function(
            self,
            "Function",
            description="Predictive scaling: forecasts traffic and schedules the alias's provisioned concurrency",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(asset)),
            memory_size=256,
            timeout=Duration.seconds(60),
            role=self.role,
            environment=variables,
            log_group=self.log_group,
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Python 3.12 like the serving function and the project's tooling; the forecaster is pure Python "
            "and moves with them.",
        )
        self.rule = events.Rule(
            self,
            "Schedule",
            description="Runs the predictive-scaling forecaster",
            schedule=schedule or events.Schedule.expression(DEFAULT_SCHEDULE_EXPRESSION),
        )
        self.rule.add_target(
            targets.LambdaFunction(self.function, retry_attempts=2, max_event_age=Duration.hours(1))
        )


def _is_token(value: str) -> bool:
    return bool(Token.is_unresolved(value))
