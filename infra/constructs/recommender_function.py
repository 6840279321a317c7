"""The recommendation Lambda: a ``live`` alias with provisioned concurrency and its scalable target."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import InfraSettings
from infra.constructs.clients import ClientIdentity
from infra.constructs.common import log_group
from infra.constructs.network import Network
from infra.nag import acknowledge
from infra.packaging import HANDLER, RUNTIME_ENVIRONMENT

ALIAS_NAME = "live"
PROVISIONED_CONCURRENCY_DIMENSION = "lambda:function:ProvisionedConcurrency"


class RecommenderFunction(Construct):
    """Python 3.12 Lambda from the asset directory (built without Docker), in the VPC's private
    subnets with the recommender's security group and role (both owned by the data stack).

    ``alias`` (``live``) carries the provisioned concurrency and is what API Gateway invokes.
    ``scalable_target`` is the Application Auto Scaling target on the alias' provisioned
    concurrency: target tracking on utilization is set here; scheduled actions (predictive
    scaling) are added on the same target (``function:<name>:live``).
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
            environment={**RUNTIME_ENVIRONMENT, **environment},
            tracing=lambda_.Tracing.ACTIVE if settings.tracing else lambda_.Tracing.DISABLED,
            log_group=self.log_group,
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

        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name=ALIAS_NAME,
            version=self.function.current_version,
            provisioned_concurrent_executions=settings.provisioned_concurrency_min,
        )

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
        self.scalable_target.scale_to_track_metric(
            "Utilization",
            target_value=settings.provisioned_concurrency_target,
            predefined_metric=appscaling.PredefinedMetric.LAMBDA_PROVISIONED_CONCURRENCY_UTILIZATION,
        )

    @property
    def scalable_resource_id(self) -> str:
        """``function:<name>:live``, the Application Auto Scaling resource id of the alias."""
        return f"function:{self.function.function_name}:{ALIAS_NAME}"
