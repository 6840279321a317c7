"""The OpenSearch domain that holds the movie vectors (k-NN), reachable by the two clients only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchservice as opensearch
from constructs import Construct

from infra.config import InfraSettings
from infra.constructs.clients import ClientIdentity
from infra.constructs.common import log_group
from infra.constructs.network import Network
from infra.nag import acknowledge

OPENSEARCH_SERVICE = "opensearchservice.amazonaws.com"
SERVICE_LINKED_ROLE_NAME = "AWSServiceRoleForAmazonOpenSearchService"
"""The role IAM creates for ``opensearchservice.amazonaws.com`` (path ``/aws-service-role/<service>/``)."""


class VectorStore(Construct):
    """An OpenSearch domain in the VPC: encrypted at rest and node to node, HTTPS only (TLS 1.2),
    slow and application logs in CloudWatch, and an access policy naming only the client roles.

    The k-NN plugin ships with every OpenSearch version; the index (faiss HNSW, inner product,
    filter inside the knn clause) is created by the indexer. With one data node (the default) the
    domain lives in one AZ; an even count spreads over two with zone awareness.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: InfraSettings,
        network: Network,
        clients: Sequence[ClientIdentity],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        nodes = settings.opensearch_data_nodes
        zone_aware = nodes > 1
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=network.vpc,
            description="OpenSearch domain: HTTPS from the recommender and the indexer only",
            allow_all_outbound=False,
        )
        for client in clients:
            self.security_group.add_ingress_rule(
                client.security_group, ec2.Port.tcp(443), f"HTTPS from the {client.description}"
            )

        # The domain ARN is built from its (fixed) name so the log and access policies need no
        # reference to the domain itself (which would be a cycle).
        domain_arn = stack.format_arn(service="es", resource="domain", resource_name=settings.domain_name)
        slow_search = log_group(self, "SlowSearchLog", settings)
        slow_index = log_group(self, "SlowIndexLog", settings)
        app_log = log_group(self, "AppLog", settings)
        log_policy = logs.ResourcePolicy(
            self,
            "LogPublishing",
            policy_statements=[
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("es.amazonaws.com")],
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[f"{group.log_group_arn}" for group in (slow_search, slow_index, app_log)],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {"aws:SourceArn": domain_arn},
                    },
                )
            ],
        )

        self.domain = opensearch.Domain(
            self,
            "Domain",
            domain_name=settings.domain_name,
            version=opensearch.EngineVersion.open_search(settings.opensearch_version),
            capacity=opensearch.CapacityConfig(
                data_nodes=nodes,
                data_node_instance_type=settings.opensearch_instance_type,
                multi_az_with_standby_enabled=False,
            ),
            ebs=opensearch.EbsOptions(
                volume_size=settings.opensearch_volume_gib, volume_type=ec2.EbsDeviceVolumeType.GP3
            ),
            zone_awareness=opensearch.ZoneAwarenessConfig(enabled=zone_aware, availability_zone_count=2)
            if zone_aware
            else opensearch.ZoneAwarenessConfig(enabled=False),
            vpc=network.vpc,
            vpc_subnets=[network.first_private_subnets(2 if zone_aware else 1)],
            security_groups=[self.security_group],
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True),
            node_to_node_encryption=True,
            enforce_https=True,
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2,
            logging=opensearch.LoggingOptions(
                slow_search_log_enabled=True,
                slow_search_log_group=slow_search,
                slow_index_log_enabled=True,
                slow_index_log_group=slow_index,
                app_log_enabled=True,
                app_log_group=app_log,
            ),
            suppress_logs_resource_policy=True,  # the LogPublishing policy above replaces CDK's custom resource
            enable_auto_software_update=True,
            removal_policy=RemovalPolicy.DESTROY,  # the index is rebuilt from the bundle in S3
        )
        self.domain.node.add_dependency(log_policy)

        # A domain in a VPC needs OpenSearch's service-linked role before it can be created (Amazon OpenSearch
        # Service Developer Guide, "Using service-linked roles to provide Amazon OpenSearch Service access to
        # resources", https://docs.aws.amazon.com/opensearch-service/latest/developerguide/slr.html, and "Launching
        # your Amazon OpenSearch Service domains within a VPC", .../vpc.html). The role is account-wide and creating
        # it again fails ("has been taken"), so it is retained on delete and `opensearchServiceLinkedRole=existing`
        # leaves it out (`recs deploy preflight` checks which applies).
        self.service_linked_role: iam.CfnServiceLinkedRole | None = None
        if settings.opensearch_service_linked_role == "create":
            self.service_linked_role = iam.CfnServiceLinkedRole(
                self,
                "ServiceLinkedRole",
                aws_service_name=OPENSEARCH_SERVICE,
                description="Lets OpenSearch Service manage the recommender domain's network interfaces in the VPC",
            )
            self.service_linked_role.apply_removal_policy(RemovalPolicy.RETAIN)
            self.domain.node.add_dependency(self.service_linked_role)

        # The access policy is set on the domain resource itself: the L2 `access_policies` option
        # installs a custom-resource Lambda to apply it after creation.
        access_policy = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid=f"Client{index}Grant{number}",
                    principals=[iam.ArnPrincipal(client.role.role_arn)],
                    actions=list(grant.actions),
                    resources=[f"{domain_arn}/{path}" for path in grant.paths],
                )
                for index, client in enumerate(clients)
                for number, grant in enumerate(client.opensearch_grants)
            ]
        )
        cfn_domain = cast(opensearch.CfnDomain, self.domain.node.default_child)
        cfn_domain.access_policies = access_policy.to_json()

        acknowledge(
            self.domain,
            "AwsSolutions-OS3",
            "The domain has no public endpoint (VPC only): it is reached through its security group, which admits "
            "the two clients' groups, and its access policy names their roles. IP allow-lists do not apply.",
        )
        acknowledge(
            self.domain,
            "AwsSolutions-OS4",
            "Dedicated master nodes triple the cost of the default single-node domain; set opensearchDataNodes "
            "and add masters for production scale.",
        )
        if not zone_aware:
            acknowledge(
                self.domain,
                "AwsSolutions-OS7",
                "Zone awareness needs two or more data nodes; the default is one node (the index can be rebuilt "
                "from the bundle in S3). Set opensearchDataNodes to 2 to spread over two AZs.",
            )

    @property
    def url(self) -> str:
        """``https://<domain endpoint>`` (what ``RECS_OPENSEARCH_URL`` expects)."""
        return f"https://{self.domain.domain_endpoint}"
