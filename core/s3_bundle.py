"""Download a bundle from ``s3://bucket/prefix`` into a local cache directory.

The cache directory is keyed by the model version and the manifest's sha256
(``<cache root>/<model_version>-<sha[:16]>/``), so a new model never mixes with an old one and
a warm Lambda (or a second process) reuses what is already under ``/tmp``. Files are written to
a temporary name and renamed, so a crash never leaves a half file under the real name; the
bundle's own checks (size, sha256, shapes) run when a file is first read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.errors import BundleError, LocationError
from core.locations import parse_s3_url, s3_key
from core.manifest import MANIFEST, Manifest

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_cache_root() -> Path:
    return Path(tempfile.gettempdir()) / "recs-bundles"


def _download(client: Any, bucket: str, key: str, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-")
    os.close(fd)
    try:
        client.download_file(bucket, key, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fetch_bundle(
    uri: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    files: Iterable[str] | None = None,
    client: Any = None,
) -> Path:
    """Download the manifest and the files it lists (or only ``files``); returns the local directory.

    Files already in the cache with the manifest's size are not downloaded again.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        bucket, prefix = parse_s3_url(uri)
    except LocationError as exc:
        raise BundleError(str(exc)) from exc
    if client is None:
        import boto3

        client = boto3.client("s3")
    try:
        body = client.get_object(Bucket=bucket, Key=s3_key(prefix, MANIFEST))["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise BundleError(f"{uri}/{MANIFEST}: cannot read it from S3 ({exc})") from exc
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise BundleError(f"{uri}/{MANIFEST}: not valid JSON ({exc})") from exc
    manifest = Manifest.parse(raw, f"{uri}/{MANIFEST}")
    digest = hashlib.sha256(body).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir else default_cache_root()
    local = root / f"{_SAFE.sub('_', manifest.model_version)}-{digest}"
    local.mkdir(parents=True, exist_ok=True)
    wanted = set(manifest.files) if files is None else set(files) - {MANIFEST}
    for name in sorted(wanted):
        entry = manifest.files.get(name)
        if entry is None:
            raise BundleError(f"{uri}: the manifest does not list {name}")
        if Path(name).name != name:
            raise BundleError(f"{uri}: refusing a bundle file outside the bundle directory: {name!r}")
        target = local / name
        if target.is_file() and target.stat().st_size == int(entry["bytes"]):
            continue
        try:
            _download(client, bucket, s3_key(prefix, name), target)
        except (ClientError, BotoCoreError) as exc:
            raise BundleError(f"{uri}/{name}: cannot download it from S3 ({exc})") from exc
    manifest_path = local / MANIFEST
    if not manifest_path.is_file() or manifest_path.read_bytes() != body:
        fd, tmp = tempfile.mkstemp(dir=local, prefix=".manifest-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        os.replace(tmp, manifest_path)
    return local
