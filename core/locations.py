"""The one rule for "S3 or a local path", used wherever a location may be either.

A location is an ``s3://bucket[/key or prefix]`` URL or anything else, which is a local path.
"""

from __future__ import annotations

import os

from core.errors import LocationError

S3_SCHEME = "s3://"


def is_s3(location: str | os.PathLike[str]) -> bool:
    """True for an ``s3://`` URL, False for a local path."""
    return str(location).startswith(S3_SCHEME)


def parse_s3_url(url: str, *, key_required: bool = False) -> tuple[str, str]:
    """``s3://bucket/some/key/`` -> ``("bucket", "some/key")`` (slashes at either end of the key removed).

    Raises ``LocationError`` for a URL that is not ``s3://``, has no bucket, or (with ``key_required``)
    names no key.
    """
    if not is_s3(url):
        raise LocationError(f"{url}: not an s3:// URL")
    bucket, _, key = url[len(S3_SCHEME) :].partition("/")
    key = key.strip("/")
    if not bucket:
        raise LocationError(f"{url}: no bucket (want s3://bucket/key)")
    if key_required and not key:
        raise LocationError(f"{url}: no key (want s3://bucket/key)")
    return bucket, key


def s3_key(prefix: str, name: str) -> str:
    """``prefix/name``, or ``name`` when the prefix is empty."""
    return f"{prefix}/{name}" if prefix else name
