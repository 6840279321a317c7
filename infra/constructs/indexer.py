"""The indexer as a Fargate task, run by EventBridge when a bundle manifest or a catalog delta lands in S3."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import aws_events as events
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.config import REPO_ROOT, InfraSettings
from infra.constructs.bundle_bucket import BUNDLES_PREFIX, DELTAS_PREFIX, BundleBucket
from infra.constructs.clients import ClientIdentity
from infra.constructs.fargate_job import FargateJob, JobImage
from infra.constructs.network import Network

CONTAINER_NAME = "indexer"
DOCKERFILE = "indexer/Dockerfile"
DOCKER_CONTEXT_EXCLUDES = [
    "*",
    "!core",
    "!indexer",
    "**/__pycache__",
    "**/*.pyc",
]
"""The image's build context is the repository root minus everything but what the Dockerfile
copies (.dockerignore rules, with '!' re-including). Synth copies the context into cdk.out and
hashes it: leaving out tests, data, .venv, node_modules, build and the rest keeps synth fast and
means an edit elsewhere in the repository does not rebuild and push a new image."""

BUNDLE_MANIFEST_PATTERN = f"{BUNDLES_PREFIX}*/manifest.json"


class IndexerTask(Construct):
    """The indexer's Fargate job (``job``: its own ECS cluster, the task definition with the image built from
    ``indexer/Dockerfile`` or ``indexerImageUri``, a dead-letter queue, the failure rule) and its trigger:

    * ``trigger``: S3 "Object Created" in the bundle bucket for ``bundles/*/manifest.json`` (full
      rebuild) or ``deltas/`` (incremental) runs the task in the private subnets, passing the event's
      bucket and key as the container's ``RECS_S3_BUCKET`` / ``RECS_S3_KEY``; events it cannot deliver
      (RunTask failing) go to the dead-letter queue.
    * ``job.failures``: an indexer task that stopped with a non-zero exit code, or failed to start,
      publishes to the alarm topic (and counts as ``TriggeredRules`` for the alarm).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: InfraSettings,
        network: Network,
        bucket: BundleBucket,
        identity: ClientIdentity,
        environment: Mapping[str, str],
        alert_topic: sns.ITopic,
        build_context: Path = REPO_ROOT,
    ) -> None:
        super().__init__(scope, construct_id)
        # "Default" leaves the job out of its resources' logical ids: they are those of this construct's children.
        self.job = FargateJob(
            self,
            "Default",
            settings=settings,
            network=network,
            identity=identity,
            name=CONTAINER_NAME,
            title="Indexer",
            cpu=settings.indexer_cpu,
            memory_mib=settings.indexer_memory_mib,
            arm64=settings.indexer_architecture == "arm64",
            image=JobImage(DOCKERFILE, DOCKER_CONTEXT_EXCLUDES, build_context, settings.indexer_image_uri),
            environment=environment,
            environment_reason="The variables are endpoints, an alias and a secret's ARN, not secrets: the Redis "
                               "AUTH token is read from Secrets Manager at run time by the task role.",
            cluster_reason="The cluster runs a short batch task a few times a month; the task's logs and the failure "
                           "rule cover it, and Container Insights would bill custom metrics around the clock.",
            alert_topic=alert_topic,
            failure_description="An indexer task stopped with a non-zero exit code or failed to start",
        )
        self.trigger = self.job.add_trigger(
            "OnCatalogUpload",
            description="Run the indexer when a bundle manifest or a catalog delta is uploaded",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket.bucket_name]},
                    "object": {
                        "key": events.Match.any_of(
                            events.Match.wildcard(BUNDLE_MANIFEST_PATTERN), events.Match.prefix(DELTAS_PREFIX)
                        )
                    },
                },
            ),
            event_environment={"RECS_S3_BUCKET": "$.detail.bucket.name", "RECS_S3_KEY": "$.detail.object.key"},
        )
