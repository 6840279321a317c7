"""ElastiCache for Redis: the response cache and the catalog generation counter."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import InfraSettings
from infra.constructs.clients import ClientIdentity
from infra.constructs.network import PRIVATE_SUBNETS, Network
from infra.nag import acknowledge


class RedisCache(Construct):
    """A Redis replication group (cluster mode off) with TLS required, AUTH, encryption at rest,
    a non-default port, and a security group that admits only the client groups.

    The AUTH token is generated into a Secrets Manager secret whose whole ``SecretString`` is the
    token; clients get its ARN (``RECS_REDIS_AUTH_SECRET_ARN``) and read it at start-up.
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
        self.port = settings.redis_port
        self.auth_secret = secretsmanager.Secret(
            self,
            "AuthToken",
            description="AUTH token of the recommender's Redis (the SecretString is the token)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True, include_space=False
            ),
        )
        acknowledge(
            self.auth_secret,
            "AwsSolutions-SMG4",
            "Rotating an ElastiCache AUTH token needs a rotation function that also calls ModifyReplicationGroup "
            "(AuthTokenUpdateStrategy ROTATE then SET); not provided. Rotate by replacing the secret and redeploying.",
        )

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=network.vpc,
            description="Redis: TLS from the recommender and the indexer only",
            allow_all_outbound=False,
        )
        for client in clients:
            self.security_group.add_ingress_rule(
                client.security_group, ec2.Port.tcp(self.port), f"Redis from the {client.description}"
            )

        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "Subnets",
            description="Private subnets of the recommender's Redis",
            subnet_ids=network.vpc.select_subnets(subnet_group_name=PRIVATE_SUBNETS).subnet_ids,
        )
        replicas = settings.redis_replicas
        self.replication_group_id = f"{settings.prefix}-cache"
        self.node_ids = [f"{self.replication_group_id}-{number:03d}" for number in range(1, 2 + replicas)]
        """The member clusters' ids (``<group id>-001`` is the first node): the ``CacheClusterId`` of its metrics."""
        self.replication_group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_id=self.replication_group_id,
            replication_group_description="Response cache and catalog generation of the movie recommender",
            engine="redis",
            engine_version=settings.redis_engine_version,
            cache_node_type=settings.redis_node_type,
            num_cache_clusters=1 + replicas,
            automatic_failover_enabled=replicas > 0,
            multi_az_enabled=replicas > 0,
            cache_subnet_group_name=subnet_group.ref,
            security_group_ids=[self.security_group.security_group_id],
            port=self.port,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            at_rest_encryption_enabled=True,
            auth_token=self.auth_secret.secret_value.unsafe_unwrap(),  # a {{resolve:secretsmanager}} reference
            auto_minor_version_upgrade=True,
        )
        acknowledge(
            self.replication_group,
            "AwsSolutions-AEC4",
            "A cache of recomputable answers: one node by default (cluster mode off); set redisReplicas >= 1 for "
            "Multi-AZ fail-over. Losing it only costs cache misses (the API serves uncached).",
        )

    @property
    def url(self) -> str:
        """``rediss://<primary endpoint>:<port>`` (what ``RECS_REDIS_URL`` expects)."""
        return (
            f"rediss://{self.replication_group.attr_primary_end_point_address}:"
            f"{self.replication_group.attr_primary_end_point_port}"
        )
