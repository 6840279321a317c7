"""Where a run's input comes from: bundle and delta locations, and the S3 key an event names.

The deployed bucket layout (docs/architecture.md)::

    [<prefix>/]bundles/<model_version>/manifest.json   a new bundle: full rebuild of that prefix
    [<prefix>/]deltas/<name>.json | <name>.csv         a catalog delta: incremental update

An EventBridge rule for S3 "Object Created" passes the bucket and key to the Fargate task as
``RECS_S3_BUCKET``/``RECS_S3_KEY`` (container overrides); ``plan_for_object`` turns them into a job.
EventBridge passes the key as it is (not URL-encoded, unlike S3's own notifications), so it is used
unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from core.bundle import Bundle, open_bundle
from core.errors import BundleError, LocationError
from core.locations import is_s3, parse_s3_url
from indexer.delta import CatalogDelta, parse_delta, read_delta
from indexer.errors import DeltaError, SourceError

_BUNDLE_KEY = re.compile(r"^(?P<root>(?:.*/)?)bundles/(?P<version>[^/]+)/manifest\.json$")
_DELTA_KEY = re.compile(r"^(?P<root>(?:.*/)?)deltas/[^/]+\.(?:json|csv)$", re.IGNORECASE)


@dataclass(frozen=True)
class ObjectPlan:
    """What an S3 object asks for."""

    job: Literal["rebuild", "update"]
    location: str
    """``s3://`` prefix of the bundle (rebuild) or ``s3://`` URL of the delta (update)."""
    bundles_root: str
    """``s3://bucket/[prefix/]bundles`` - where the bundle of the live model is found for a delta."""


def plan_for_object(bucket: str | None, key: str | None) -> ObjectPlan:
    """Decide full rebuild or incremental update from an S3 object key; ``SourceError`` if neither."""
    if not bucket or not key:
        raise SourceError("no S3 object given: pass --bucket and --key, or set RECS_S3_BUCKET and RECS_S3_KEY "
                          "(the EventBridge rule's container overrides)")
    if match := _BUNDLE_KEY.match(key):
        prefix = key[: -len("/manifest.json")]
        return ObjectPlan("rebuild", f"s3://{bucket}/{prefix}", f"s3://{bucket}/{match.group('root')}bundles")
    if match := _DELTA_KEY.match(key):
        return ObjectPlan("update", f"s3://{bucket}/{key}", f"s3://{bucket}/{match.group('root')}bundles")
    raise SourceError(
        f"s3://{bucket}/{key} is neither a bundle manifest (bundles/<model_version>/manifest.json) "
        "nor a catalog delta (deltas/<name>.json or .csv): nothing to do"
    )


def load_bundle(location: str) -> Bundle:
    """Open a bundle from a directory or an ``s3://`` prefix (downloaded to a local cache)."""
    try:
        bundle = open_bundle(location)
    except BundleError as exc:
        raise SourceError(str(exc)) from exc
    return bundle


def load_delta(location: str) -> CatalogDelta:
    """Read and validate a delta from a local file or an ``s3://`` URL (``DeltaError`` if malformed)."""
    if not is_s3(location):
        return read_delta(location)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        bucket, key = parse_s3_url(location, key_required=True)
    except LocationError as exc:
        raise SourceError(str(exc)) from exc
    try:
        data = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise DeltaError(location, [f"cannot read it from S3 ({exc})"]) from exc
    return parse_delta(data, location)
