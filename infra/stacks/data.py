"""The data/indexing tier: VPC, OpenSearch, Redis, the bundle bucket, the indexer task and the retraining task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import REPO_ROOT, InfraSettings
from infra.constructs.bundle_bucket import BUNDLES_PREFIX, DELTAS_PREFIX, BundleBucket
from infra.constructs.cache import RedisCache
from infra.constructs.clients import (
    INDEXER_OPENSEARCH_GRANTS,
    RETRAIN_OPENSEARCH_GRANTS,
    ClientIdentity,
    recommender_opensearch_grants,
)
from infra.constructs.indexer import IndexerTask
from infra.constructs.monitoring import AlertTopic
from infra.constructs.network import Network
from infra.constructs.retrain import RetrainTask
from infra.constructs.vector_store import VectorStore
from infra.nag import acknowledge, ref


class DataStack(Stack):
    """Everything that holds state, the jobs that change it (indexer, retraining), and the identities (role and
    security group) of its three clients, so that only they are admitted. Deployed first; the serving stack reads
    its outputs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: InfraSettings,
        build_context: Path = REPO_ROOT,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Movie recommender: data tier (VPC, OpenSearch, Redis, bundle bucket, indexer, retraining)",
            **kwargs,
        )
        self.settings = settings
        self.network = Network(self, "Network", settings=settings)
        self.bundles = BundleBucket(self, "Bundles")
        self.alerts = AlertTopic(self, "Alerts", settings=settings)

        self.recommender_identity = ClientIdentity(
            self,
            "RecommenderIdentity",
            vpc=self.network.vpc,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="recommender function",
            opensearch_grants=recommender_opensearch_grants(settings.opensearch_alias),
        )
        self.indexer_identity = ClientIdentity(
            self,
            "IndexerIdentity",
            vpc=self.network.vpc,
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="indexer task",
            opensearch_grants=INDEXER_OPENSEARCH_GRANTS,
        )
        self.retrain_identity = ClientIdentity(
            self,
            "RetrainIdentity",
            vpc=self.network.vpc,
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="retraining task",
            opensearch_grants=RETRAIN_OPENSEARCH_GRANTS,
        )
        clients = [self.recommender_identity, self.indexer_identity, self.retrain_identity]
        for client in clients:
            self.network.admit_to_endpoints(client.security_group, f"AWS APIs from the {client.description}")
        self.vector_store = VectorStore(
            self, "VectorStore", settings=settings, network=self.network, clients=clients
        )
        self.cache = RedisCache(self, "Cache", settings=settings, network=self.network, clients=clients)

        self._grant_bucket_read(self.recommender_identity, [BUNDLES_PREFIX])
        self._grant_bucket_read(self.indexer_identity, [BUNDLES_PREFIX, DELTAS_PREFIX])
        for client in clients:
            self.cache.auth_secret.grant_read(client.role)

        self.indexer = IndexerTask(
            self,
            "Indexer",
            settings=settings,
            network=self.network,
            bucket=self.bundles,
            identity=self.indexer_identity,
            # No RECS_BUNDLE: the task takes the bundle from the uploaded manifest's key, and for a delta
            # from bundles/<model version of the live index>.
            environment={
                **self.client_environment(),
                "RECS_S3_BUCKET": self.bundles.bucket_name,
                "RECS_INDEX_REPLICAS": str(settings.opensearch_replicas),
            },
            alert_topic=self.alerts.topic,
            build_context=build_context,
        )

        self.retrain = RetrainTask(
            self,
            "Retrain",
            settings=settings,
            network=self.network,
            bucket=self.bundles,
            identity=self.retrain_identity,
            # the live model from the OpenSearch alias, the lock in Redis (its token from Secrets Manager)
            environment=self.client_environment(),
            alert_topic=self.alerts.topic,
            build_context=build_context,
        )

        CfnOutput(self, "BundleBucketName", value=self.bundles.bucket_name,
                  description="Upload bundles to bundles/<model_version>/ (manifest.json last) and deltas to deltas/")
        CfnOutput(self, "OpenSearchEndpoint", value=self.vector_store.url)
        CfnOutput(self, "RedisEndpoint", value=self.cache.url)
        CfnOutput(self, "IndexerLogGroup", value=self.indexer.job.log_group.log_group_name)
        CfnOutput(self, "IndexerCluster", value=self.indexer.job.cluster.cluster_name)
        CfnOutput(self, "AlarmTopicArn", value=self.alerts.topic.topic_arn)
        CfnOutput(self, "RetrainCluster", value=self.retrain.job.cluster.cluster_name)
        CfnOutput(self, "RetrainTaskDefinition", value=self.retrain.job.task_definition.task_definition_arn,
                  description="aws ecs run-task --cluster <RetrainCluster> --task-definition <this> ... runs a retrain")
        CfnOutput(self, "RetrainLogGroup", value=self.retrain.job.log_group.log_group_name)

    def client_environment(self) -> dict[str, str]:
        """The ``RECS_*`` variables both clients share (docs/architecture.md, Configuration)."""
        return {
            "RECS_OPENSEARCH_URL": self.vector_store.url,
            "RECS_OPENSEARCH_ALIAS": self.settings.opensearch_alias,
            "RECS_REDIS_URL": self.cache.url,
            "RECS_REDIS_AUTH_SECRET_ARN": self.cache.auth_secret.secret_arn,
        }

    def recommender_environment(self) -> dict[str, str]:
        """The function's variables: the shared ones and ``RECS_BUNDLE``, the bundle root ``s3://<bucket>/bundles/``
        (it serves the bundle of the live index's model), or the one bundle of a ``modelVersion`` pin."""
        return {"RECS_BUNDLE": self.bundles.bundle_uri(self.settings.model_version), **self.client_environment()}

    def _grant_bucket_read(self, client: ClientIdentity, prefixes: list[str]) -> None:
        """GetObject under the prefixes and ListBucket limited to them (no ``s3:Get*``-style wildcards)."""
        bucket = self.bundles.bucket
        policy = iam.Policy(
            self.bundles,
            f"Read{client.node.id}",
            roles=[client.role],
            statements=[
                iam.PolicyStatement(
                    sid="ReadObjects",
                    actions=["s3:GetObject"],
                    resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in prefixes],
                ),
                iam.PolicyStatement(
                    sid="ListPrefixes",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
                ),
            ],
        )
        for prefix in prefixes:
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::{ref(bucket, 'Arn')}/{prefix}*]",
                "Object keys under this prefix are not known in advance (model versions, delta names); reads are "
                "limited to the prefix.",
            )
