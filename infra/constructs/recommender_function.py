"""The recommendation Lambda and its ``live`` alias, with the cold-start strategy of ``coldStart``.

- ``none``: on-demand environments only; the alias points at the current published version.
- ``provisioned``: provisioned concurrency on the alias, owned by its Application Auto Scaling target
  (``_provisioned_concurrency``).
- ``snapstart``: SnapStart on published versions (the alias' version is snapshotted after its init, and
  restored on scale-up; ``recommender.snapstart`` holds the runtime hooks). SnapStart cannot be combined with
  provisioned concurrency, EFS or ephemeral storage above 512 MB (Lambda Developer Guide, "Improving startup
  performance with Lambda SnapStart", https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html): this
  function has neither EFS nor more than the default 512 MB of ``/tmp``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Annotations, Duration, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.config import InfraSettings
from infra.constructs.clients import ClientIdentity
from infra.constructs.common import log_group
from infra.constructs.network import Network
from infra.nag import acknowledge
from infra.packaging import HANDLER, RUNTIME_ENVIRONMENT

ALIAS_NAME = "live"
TRACING_OFF = {"POWERTOOLS_TRACE_DISABLED": "true"}
"""Without ``tracing``: the handler builds no Powertools ``Tracer`` (``recommender.observability``), so a cold start
does not import the X-Ray SDK (and botocore's patching) for traces nobody records."""
PROVISIONED_CONCURRENCY_DIMENSION = "lambda:function:ProvisionedConcurrency"
AWS_CUSTOM_RESOURCE_PROVIDER_ID = "AWS679f53fac002430cb0da5b7982bd2287"
"""The construct id of CDK's singleton AwsCustomResource provider function (fixed by aws-cdk-lib)."""


class RecommenderFunction(Construct):
    """Python 3.12 Lambda from the asset directory (built without Docker), in the VPC's private
    subnets with the recommender's security group and role (both owned by the data stack).

    ``alias`` (``live``) is what API Gateway invokes, always a published version (``current_version``).
    With ``coldStart=provisioned``, ``scalable_target`` is the Application Auto Scaling target on the alias'
    provisioned concurrency: target tracking on utilization is set here; scheduled actions (predictive
    scaling) are added on the same target (``function:<name>:live``). With the other strategies it is ``None``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: InfraSettings,
        network: Network,
        identity: ClientIdentity,
        environment: Mapping[str, str],
        asset_dir: Path,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.log_group = log_group(self, "Logs", settings, name=f"/aws/lambda/{settings.function_name}")

        # What the function needs for itself (the data-tier grants live on the role in the data stack).
        statements = [
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="VpcNetworkInterfaces",
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSubnets",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                # '*' required: the EC2 Describe* actions have no resource-level permissions, and Lambda
                # creates its ENIs before they have an ARN (the same scope as AWSLambdaVPCAccessExecutionRole).
                resources=["*"],
            ),
        ]
        runtime_policy = iam.Policy(self, "RuntimePolicy", roles=[identity.role], statements=statements)
        acknowledge(
            runtime_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "EC2 network-interface actions have no resource-level permissions; '*' is what Lambda's own "
            "AWSLambdaVPCAccessExecutionRole grants, here without the managed policy.",
        )

        self.function = lambda_.Function(
            self,
            "Function",
            function_name=settings.function_name,
            description="Movie recommendations: numpy user tower, OpenSearch k-NN, Redis cache",
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(asset_dir)),
            architecture=lambda_.Architecture.ARM_64
            if settings.lambda_architecture == "arm64"
            else lambda_.Architecture.X86_64,
            memory_size=settings.lambda_memory_mib,
            timeout=Duration.seconds(settings.lambda_timeout_seconds),
            vpc=network.vpc,
            vpc_subnets=network.private_subnets,
            security_groups=[identity.security_group],
            role=identity.role,
            environment={**RUNTIME_ENVIRONMENT, **({} if settings.tracing else TRACING_OFF), **environment},
            tracing=lambda_.Tracing.ACTIVE if settings.tracing else lambda_.Tracing.DISABLED,
            log_group=self.log_group,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if settings.snapstart else None,
        )
        if settings.snapstart:
            # CDK warns that SnapStart applies to published versions only: the alias below is one.
            Annotations.of(self.function).acknowledge_warning(
                "@aws-cdk/aws-lambda:snapStartRequirePublish",
                "the live alias (what API Gateway invokes) points at current_version, a published version",
            )
        self.function.node.add_dependency(runtime_policy)  # ENI permissions must exist before the function
        if settings.tracing:
            # Active tracing makes CDK add xray:PutTraceSegments/PutTelemetryRecords on '*' to the role's
            # default policy: X-Ray has no resource-level permissions for them.
            acknowledge(
                identity.role,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray PutTraceSegments and PutTelemetryRecords (added by CDK for active tracing) accept only '*'.",
            )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Pinned to Python 3.12 on purpose: the asset's wheels are built for cp312 manylinux_2_28 by "
            "infra/packaging.py; move both together.",
        )

        # No ProvisionedConcurrencyConfig on the alias (see _provisioned_concurrency): every code deploy moves the
        # alias to a new version, and CloudFormation would re-apply a static value over the current plan.
        self.alias = lambda_.Alias(self, "Live", alias_name=ALIAS_NAME, version=self.function.current_version)
        self.initial_provisioned_concurrency: cr.AwsCustomResource | None = None
        self.scalable_target: appscaling.ScalableTarget | None = None
        if settings.provisioned:
            self._provisioned_concurrency(settings, stack)

    def _provisioned_concurrency(self, settings: InfraSettings, stack: Stack) -> None:
        """All of the alias' provisioned concurrency, in one place (only with ``coldStart=provisioned``).

        The Application Auto Scaling scalable target owns the value: its MinCapacity/MaxCapacity, the forecaster's
        scheduled actions (MinCapacity per hour) and target tracking on utilization. The alias carries no static
        ``ProvisionedConcurrentExecutions``: CloudFormation applies that value on every update of the alias, and every
        code deploy updates it (a new version), so each deploy reset the capacity the forecaster or target tracking
        had set, until their next action.

        A scalable target on an alias with no provisioned-concurrency configuration deploys, but registering it sets
        nothing: capacity changes only with a scaling activity (aws-cdk issue #19103: ``addAutoScaling`` alone left the
        alias with no provisioned concurrency; target tracking cannot start, its utilization metric needs some). So a
        custom resource sets ``provisionedConcurrencyMin`` once, when it is created, with Lambda's
        PutProvisionedConcurrencyConfig (Lambda Developer Guide, "Configuring provisioned concurrency for a function",
        https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html). Its properties (function, alias,
        minimum) do not change between code deploys, so CloudFormation does not call it again; it runs again only when
        ``provisionedConcurrencyMin`` itself changes (then the new floor applies at once, and the next scheduled
        action restores the plan above it). Deleting it deletes the alias' provisioned-concurrency configuration
        (DeleteProvisionedConcurrencyConfig; none there is fine): a deploy that leaves ``provisioned`` for another
        strategy removes the capacity the stack no longer owns, instead of leaving it billed. CloudFormation deletes
        it after the scalable target that depends on it, and before the alias.
        The allocation needs unreserved account concurrency (``recs deploy preflight`` checks the quota).
        """
        target = f"{self.function.function_arn}:{ALIAS_NAME}"
        initial = cr.AwsSdkCall(
            service="Lambda",
            action="putProvisionedConcurrencyConfig",
            parameters={
                "FunctionName": self.function.function_name,
                "Qualifier": ALIAS_NAME,
                "ProvisionedConcurrentExecutions": settings.provisioned_concurrency_min,
            },
            physical_resource_id=cr.PhysicalResourceId.of(f"{settings.function_name}:{ALIAS_NAME}:initial"),
        )
        release = cr.AwsSdkCall(
            service="Lambda",
            action="deleteProvisionedConcurrencyConfig",
            parameters={"FunctionName": self.function.function_name, "Qualifier": ALIAS_NAME},
            ignore_error_codes_matching="ProvisionedConcurrencyConfigNotFoundException|ResourceNotFoundException",
        )
        self.initial_provisioned_concurrency = cr.AwsCustomResource(
            self,
            "InitialProvisionedConcurrency",
            on_create=initial,
            on_update=initial,
            on_delete=release,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(
                    actions=["lambda:PutProvisionedConcurrencyConfig", "lambda:DeleteProvisionedConcurrencyConfig"],
                    resources=[target],
                )]
            ),
            install_latest_aws_sdk=False,
            timeout=Duration.minutes(2),
            log_group=log_group(self, "InitialProvisionedConcurrencyLogs", settings),
        )
        self.initial_provisioned_concurrency.node.add_dependency(self.alias)
        _acknowledge_custom_resource_provider(stack)

        self.scalable_target = appscaling.ScalableTarget(
            self,
            "ProvisionedConcurrency",
            service_namespace=appscaling.ServiceNamespace.LAMBDA,
            resource_id=f"function:{self.function.function_name}:{ALIAS_NAME}",
            scalable_dimension=PROVISIONED_CONCURRENCY_DIMENSION,
            min_capacity=settings.provisioned_concurrency_min,
            max_capacity=settings.provisioned_concurrency_max,
            # Application Auto Scaling's service-linked role for Lambda (created by the service on first use).
            role=iam.Role.from_role_arn(
                self,
                "ScalingRole",
                stack.format_arn(
                    service="iam",
                    region="",
                    resource="role",
                    resource_name="aws-service-role/lambda.application-autoscaling.amazonaws.com/"
                    "AWSServiceRoleForApplicationAutoScaling_LambdaConcurrency",
                ),
            ),
        )
        self.scalable_target.node.add_dependency(self.alias)
        self.scalable_target.node.add_dependency(self.initial_provisioned_concurrency)
        self.scalable_target.scale_to_track_metric(
            "Utilization",
            target_value=settings.provisioned_concurrency_target,
            predefined_metric=appscaling.PredefinedMetric.LAMBDA_PROVISIONED_CONCURRENCY_UTILIZATION,
        )

    @property
    def scalable_resource_id(self) -> str:
        """``function:<name>:live``, the Application Auto Scaling resource id of the alias."""
        return f"function:{self.function.function_name}:{ALIAS_NAME}"


def _acknowledge_custom_resource_provider(stack: Stack) -> None:
    """CDK's one provider function for every AwsCustomResource in the stack (a singleton Lambda)."""
    provider = stack.node.try_find_child(AWS_CUSTOM_RESOURCE_PROVIDER_ID)
    if provider is None:
        return
    acknowledge(
        provider,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "CDK's AwsCustomResource provider (runs at creation, and at deletion) writes its own logs with the AWS managed "
        "basic execution policy; its API permissions are Put/DeleteProvisionedConcurrencyConfig on the alias.",
    )
    acknowledge(
        provider,
        "AwsSolutions-L1",
        "CDK's AwsCustomResource provider picks its own Node.js runtime with the aws-cdk-lib release.",
    )
