"""Publishing a bundle to a bundle root: every file first, ``manifest.json`` last, so no reader (the
indexer's S3 trigger, the API under a bundle root, ``open_bundle``) ever sees half a bundle.

A bundle root is a local directory or an ``s3://bucket/prefix/`` (``s3://<bucket>/bundles/`` deployed);
a model's bundle is ``<root><model_version>/``. In S3 every object is written with ``If-None-Match: *``
(unless ``overwrite``): a version that exists is never replaced, which is what the retraining task's
role is limited to (it may only create objects under ``bundles/``). A crash midway leaves files without
a manifest: nothing lists them, nothing triggers on them, and the next publish of that version (never
the same: versions carry the training time) does not collide.

Files beside a bundle (a retraining report) are written and read with ``put_beside``/``read_beside``;
``newest_beside`` finds the most recent one of a name across the root's versions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import BundleError, LocationError, PublishError
from core.locations import is_s3, parse_s3_url
from core.manifest import MANIFEST


@dataclass(frozen=True)
class Published:
    """Where a bundle went and what was written, in order (the manifest last)."""

    location: str
    model_version: str
    written: list[str] = field(default_factory=list)


def bundle_location(root: str | os.PathLike[str], model_version: str) -> str:
    """``<root><model_version>`` (the root with or without its trailing ``/``)."""
    if Path(model_version).name != model_version or model_version in ("", ".", ".."):
        raise PublishError(f"{model_version!r} is not a model version (one folder name)")
    text = str(root)
    return f"{text.rstrip('/')}/{model_version}"


def _manifest_of(bundle_dir: Path) -> dict[str, Any]:
    path = bundle_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: not a readable bundle manifest ({exc})") from exc
    if not isinstance(manifest, dict) or not manifest.get("model_version") or not isinstance(
        manifest.get("files"), dict
    ):
        raise BundleError(f"{path}: the manifest has no model_version or files")
    missing = sorted(name for name in manifest["files"] if not (bundle_dir / name).is_file())
    if missing:
        raise BundleError(f"{bundle_dir}: the manifest lists files that are missing: {', '.join(missing)}")
    return manifest


def publish_bundle(
    bundle_dir: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    client: Any = None,
) -> Published:
    """Copy the bundle in ``bundle_dir`` to ``<root><model_version>/``, the files its manifest lists first and
    the manifest last. Refuses (``PublishError``) a version whose manifest is already there, unless
    ``overwrite``; a missing or incomplete source is a ``BundleError`` and nothing is written."""
    source = Path(bundle_dir)
    manifest = _manifest_of(source)
    version = str(manifest["model_version"])
    target = bundle_location(root, version)
    names = [*sorted(manifest["files"]), MANIFEST]
    if is_s3(target):
        written = _publish_s3(source, target, names, overwrite, client)
    else:
        written = _publish_local(source, Path(target), names, overwrite)
    return Published(target, version, written)


def _publish_local(source: Path, target: Path, names: list[str], overwrite: bool) -> list[str]:
    if (target / MANIFEST).exists() and not overwrite:
        raise PublishError(f"{target}: a bundle of this version is published already; not replacing it")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:  # each file complete under a temporary name, then renamed: the manifest's rename is last
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{name}-")
        os.close(fd)
        try:
            shutil.copyfile(source / name, tmp)
            os.replace(tmp, target / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        written.append(str(target / name))
    return written


def _s3(client: Any) -> Any:
    if client is not None:
        return client
    import boto3

    return boto3.client("s3")


def _key(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _put(client: Any, bucket: str, key: str, body: bytes, overwrite: bool) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    extra = {} if overwrite else {"IfNoneMatch": "*"}
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, **extra)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
            raise PublishError(f"s3://{bucket}/{key} exists already (or is being written); not replacing it") from exc
        raise PublishError(f"s3://{bucket}/{key}: cannot write it ({exc})") from exc
    except BotoCoreError as exc:
        raise PublishError(f"s3://{bucket}/{key}: cannot write it ({exc})") from exc


def _publish_s3(source: Path, target: str, names: list[str], overwrite: bool, client: Any) -> list[str]:
    try:
        bucket, prefix = parse_s3_url(target, key_required=True)
    except LocationError as exc:
        raise PublishError(str(exc)) from exc
    s3 = _s3(client)
    if not overwrite and _exists(s3, bucket, _key(prefix, MANIFEST)):
        raise PublishError(f"{target}/{MANIFEST}: a bundle of this version is published already; not replacing it")
    written = []
    for name in names:  # one PUT per file (bundles are tens of MB; a PUT takes up to 5 GB), the manifest last
        _put(s3, bucket, _key(prefix, name), (source / name).read_bytes(), overwrite)
        written.append(f"s3://{bucket}/{_key(prefix, name)}")
    return written


def _exists(client: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise PublishError(f"s3://{bucket}/{key}: cannot check it ({exc})") from exc
    except BotoCoreError as exc:
        raise PublishError(f"s3://{bucket}/{key}: cannot check it ({exc})") from exc
    return True


def put_beside(root: str | os.PathLike[str], model_version: str, name: str, data: bytes, *,
               client: Any = None) -> str:
    """Write ``<root><model_version>/<name>`` once (an existing one is never replaced); returns its location."""
    folder = bundle_location(root, model_version)
    if is_s3(folder):
        bucket, prefix = parse_s3_url(folder, key_required=True)
        _put(_s3(client), bucket, _key(prefix, name), data, overwrite=False)
        return f"s3://{bucket}/{_key(prefix, name)}"
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("xb") as fh:
            fh.write(data)
    except FileExistsError as exc:
        raise PublishError(f"{path} exists already; not replacing it") from exc
    return str(path)


def read_beside(root: str | os.PathLike[str], model_version: str, name: str, *, client: Any = None) -> bytes | None:
    """``<root><model_version>/<name>``, or None when there is none."""
    folder = bundle_location(root, model_version)
    if not is_s3(folder):
        path = Path(folder) / name
        return path.read_bytes() if path.is_file() else None
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = parse_s3_url(folder, key_required=True)
    try:
        return bytes(_s3(client).get_object(Bucket=bucket, Key=_key(prefix, name))["Body"].read())
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise PublishError(f"s3://{bucket}/{_key(prefix, name)}: cannot read it ({exc})") from exc
    except BotoCoreError as exc:
        raise PublishError(f"s3://{bucket}/{_key(prefix, name)}: cannot read it ({exc})") from exc


def newest_beside(root: str | os.PathLike[str], name: str, *, client: Any = None) -> str | None:
    """The model version whose folder holds the most recently written ``<name>``, or None."""
    best: tuple[float, str] | None = None
    for version, modified in _beside(root, name, client):
        if best is None or (modified, version) > best:
            best = (modified, version)
    return best[1] if best else None


def _beside(root: str | os.PathLike[str], name: str, client: Any) -> Iterator[tuple[str, float]]:
    if not is_s3(root):
        folder = Path(root)
        if folder.is_dir():
            for path in folder.glob(f"*/{name}"):
                yield path.parent.name, path.stat().st_mtime
        return
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = parse_s3_url(str(root))
    start = f"{prefix}/" if prefix else ""
    try:
        pages = _s3(client).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=start)
        for page in pages:
            for item in page.get("Contents", []):
                rest = item["Key"][len(start):]
                version, _, leaf = rest.partition("/")
                if leaf == name and version:
                    yield version, item["LastModified"].timestamp()
    except (ClientError, BotoCoreError) as exc:
        raise PublishError(f"{root}: cannot list it ({exc})") from exc
