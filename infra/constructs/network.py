"""The VPC both tiers live in: private subnets only by default, AWS services through VPC endpoints."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from infra.config import InfraSettings
from infra.constructs.common import log_group

PRIVATE_SUBNETS = "private"


class Network(Construct):
    """A VPC with a fixed number of AZs (no lookups), a flow log of rejected traffic, and endpoints.

    With ``natGateways`` 0 (the default) the subnets are isolated: nothing in them reaches the
    internet. S3 is reached through a gateway endpoint (free) and ECR, CloudWatch Logs, Secrets
    Manager and SNS through interface endpoints, which is what the Fargate tasks (image pull, logs, the
    Redis auth token; the retraining report to the alarm topic) and the Lambda (the auth token) need.
    Interface endpoints are billed per ENI-hour, so by default they sit in one AZ (``endpointAzs``); the
    other AZ reaches them across.
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: InfraSettings) -> None:
        super().__init__(scope, construct_id)
        if settings.nat_gateways == 0:
            subnet_configuration = [
                ec2.SubnetConfiguration(name=PRIVATE_SUBNETS, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22)
            ]
        else:
            subnet_configuration = [
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name=PRIVATE_SUBNETS, subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                ),
            ]
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/16"),
            max_azs=settings.max_azs,
            nat_gateways=settings.nat_gateways,
            subnet_configuration=subnet_configuration,
        )
        self.private_subnets = ec2.SubnetSelection(subnet_group_name=PRIVATE_SUBNETS)

        flow_log_group = log_group(self, "RejectedTrafficLog", settings)
        self.vpc.add_flow_log(
            "RejectedTraffic",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )

        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.private_subnets])
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="Interface endpoints: HTTPS from the data tier clients only",
            allow_all_outbound=False,
        )
        if settings.interface_endpoints:
            private = self.vpc.select_subnets(subnet_group_name=PRIVATE_SUBNETS).subnets
            in_endpoint_azs = private[: settings.endpoint_azs]
            for name, service in (
                ("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
                ("EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
                ("Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
                ("SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
                ("Sns", ec2.InterfaceVpcEndpointAwsService.SNS),
            ):
                self.vpc.add_interface_endpoint(
                    name,
                    service=service,
                    subnets=ec2.SubnetSelection(subnets=in_endpoint_azs),
                    private_dns_enabled=True,
                    security_groups=[self.endpoint_security_group],
                    open=False,
                )

    def admit_to_endpoints(self, client: ec2.ISecurityGroup, description: str) -> None:
        """Let a client security group reach the interface endpoints (HTTPS)."""
        self.endpoint_security_group.add_ingress_rule(client, ec2.Port.tcp(443), description)

    def first_private_subnets(self, count: int) -> ec2.SubnetSelection:
        """The private subnets of the first ``count`` AZs (single-AZ services need exactly one)."""
        subnets = self.vpc.select_subnets(subnet_group_name=PRIVATE_SUBNETS).subnets
        return ec2.SubnetSelection(subnets=subnets[:count])

