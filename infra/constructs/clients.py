"""The identities of the data tier's clients: the recommender function, the indexer task and the retraining task.

Each client is a role plus a security group, both created in the data stack, so the data tier's
resources can name exactly who may reach them (security-group ingress, the OpenSearch access
policy) without a dependency cycle with the serving stack, which only uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct


@dataclass(frozen=True)
class OpenSearchGrant:
    """``actions`` on ``paths`` of the domain (``*``: every index and API; ``movies/_search``: that API of that
    index or alias). Resource-based policies name sub-resources as ``arn:...:domain/<name>/<path>``
    (Amazon OpenSearch Service Developer Guide, "Identity and Access Management in Amazon OpenSearch Service",
    https://docs.aws.amazon.com/opensearch-service/latest/developerguide/ac.html#ac-types-resource)."""

    actions: tuple[str, ...]
    paths: tuple[str, ...]


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
        opensearch_grants: list[OpenSearchGrant],
    ) -> None:
        super().__init__(scope, construct_id)
        self.description = description
        self.opensearch_grants = opensearch_grants
        """What the OpenSearch access policy grants this client: ``es:ESHttp*`` actions (listed, no wildcard) on
        paths under the domain."""
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


READ_ACTIONS = ("es:ESHttpGet", "es:ESHttpHead")
WRITE_ACTIONS = ("es:ESHttpPut", "es:ESHttpDelete", "es:ESHttpPatch")
READ_ONLY_POST_APIS = ("_search", "_mget", "_count")
"""The POST APIs that only read, and the only ones the recommender sends (opensearch-py's ``search``, ``mget`` and
``count`` are POSTs to ``<alias>/<api>``: recommender/adapters/opensearch_index.py). ``es:ESHttpPost`` on
``domain/<name>/*`` would also allow ``_bulk``, ``_doc``, ``_delete_by_query`` and ``_aliases``."""


def recommender_opensearch_grants(alias: str) -> list[OpenSearchGrant]:
    """Reads only: GET/HEAD anywhere (documents, mappings, the alias, health), POST only to the read-only APIs of
    the alias the function queries."""
    return [
        OpenSearchGrant(READ_ACTIONS, ("*",)),
        OpenSearchGrant(("es:ESHttpPost",), tuple(f"{alias}/{api}" for api in READ_ONLY_POST_APIS)),
    ]


INDEXER_OPENSEARCH_GRANTS = [OpenSearchGrant((*READ_ACTIONS, "es:ESHttpPost", *WRITE_ACTIONS), ("*",))]
"""Creates and deletes indices, bulk-loads, swaps the alias."""


RETRAIN_OPENSEARCH_GRANTS = [OpenSearchGrant(READ_ACTIONS, ("*",))]
"""Reads only: the alias and the live index's ``_meta.model_version`` (GET ``_alias/<alias>``, ``<index>/_mapping``);
its lock is in Redis."""
