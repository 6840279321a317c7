"""The identities of the data tier's two clients: the recommender function and the indexer task.

Each client is a role plus a security group, both created in the data stack, so the data tier's
resources can name exactly who may reach them (security-group ingress, the OpenSearch access
policy) without a dependency cycle with the serving stack, which only uses them.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct


class ClientIdentity(Construct):
    """A role and a security group for one client of OpenSearch and Redis."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        assumed_by: iam.IPrincipal,
        description: str,
        opensearch_actions: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.description = description
        self.opensearch_actions = opensearch_actions
        """The ``es:ESHttp*`` actions the OpenSearch access policy grants this client (listed, no wildcard)."""
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"{description}: client of OpenSearch and Redis",
            # Egress stays open: in the default isolated subnets it can only reach the VPC (the data
            # services and the VPC endpoints), and the servers' groups admit only these clients.
            allow_all_outbound=True,
        )
        self.role = iam.Role(self, "Role", assumed_by=assumed_by, description=description)


RECOMMENDER_OPENSEARCH_ACTIONS = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"]
"""Reads only: search (POST _search), documents and health (GET/HEAD)."""
INDEXER_OPENSEARCH_ACTIONS = [
    "es:ESHttpGet",
    "es:ESHttpHead",
    "es:ESHttpPost",
    "es:ESHttpPut",
    "es:ESHttpDelete",
    "es:ESHttpPatch",
]
"""Creates and deletes indices, bulk-loads, swaps the alias."""
