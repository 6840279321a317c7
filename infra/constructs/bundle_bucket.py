"""The S3 bucket that holds model bundles and catalog deltas; its writes trigger the indexer."""

from __future__ import annotations

from typing import cast

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import acknowledge

BUNDLES_PREFIX = "bundles/"
"""``bundles/<model_version>/manifest.json`` and the files it lists: a new manifest -> full rebuild."""
DELTAS_PREFIX = "deltas/"
"""``deltas/<name>.json``: a catalog delta -> incremental update."""


class BundleBucket(Construct):
    """Versioned, private, TLS-only, S3-managed encryption, access-logged, with EventBridge notifications.

    Both buckets are retained when the stack is deleted: bundles are the product's models (README
    "Deploy to AWS" says how to delete them). Old object versions expire after 30 days.
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This bucket is the access-log destination of the bundle bucket; logging it into itself would loop.",
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="bundle-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        # EventBridge notifications set on the bucket itself rather than through `event_bridge_enabled`,
        # which would add a custom-resource Lambda just to flip this one switch.
        cfn_bucket = cast(s3.CfnBucket, self.bucket.node.default_child)
        cfn_bucket.add_property_override("NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True)

    @property
    def bucket_name(self) -> str:
        return self.bucket.bucket_name

    def bundle_uri(self, model_version: str | None = None) -> str:
        """``s3://<bucket>/bundles/``, the bundle root (the recommender serves ``<root><live model>/``), or with
        ``model_version`` the one bundle ``s3://<bucket>/bundles/<model_version>`` (a token until deploy)."""
        if model_version is None:
            return f"s3://{self.bucket.bucket_name}/{BUNDLES_PREFIX}"
        return f"s3://{self.bucket.bucket_name}/{BUNDLES_PREFIX}{model_version}"
