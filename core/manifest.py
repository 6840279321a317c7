"""The manifest of a model bundle: ``manifest.json``, its required fields and the files it lists.

``Manifest.parse`` checks the format version and that every required file has a sha256 and a size;
``core.bundle`` verifies the files themselves when they are read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BundleError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
USER_TOWER = "user_tower.npz"
ITEM_TOWER = "item_tower.npz"
CATALOG = "catalog.json"
MOVIE_VECTORS = "movie_vectors.npy"
REQUIRED_FILES = (USER_TOWER, ITEM_TOWER, CATALOG, MOVIE_VECTORS)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json``."""

    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, raw: Any, source: str) -> Manifest:
        if not isinstance(raw, dict):
            raise BundleError(f"{source}: the manifest must be a JSON object")
        for key in ("format_version", "model_version", "dimension", "history_length", "files"):
            if key not in raw:
                raise BundleError(f"{source}: missing field {key!r}")
        if raw["format_version"] != FORMAT_VERSION:
            raise BundleError(f"{source}: format_version {raw['format_version']!r}, this code reads {FORMAT_VERSION}")
        files = raw["files"]
        if not isinstance(files, dict):
            raise BundleError(f"{source}: 'files' must be an object")
        for name in REQUIRED_FILES:
            entry = files.get(name)
            if not isinstance(entry, dict) or "sha256" not in entry or "bytes" not in entry:
                raise BundleError(f"{source}: 'files' has no sha256 and bytes for {name}")
        return cls(raw)

    @property
    def model_version(self) -> str:
        return str(self.raw["model_version"])

    @property
    def dimension(self) -> int:
        return int(self.raw["dimension"])

    @property
    def history_length(self) -> int:
        return int(self.raw["history_length"])

    @property
    def space_type(self) -> str:
        return str(self.raw.get("space_type", "innerproduct"))

    @property
    def files(self) -> Mapping[str, Mapping[str, Any]]:
        return self.raw["files"]

    @property
    def dataset(self) -> Mapping[str, Any]:
        return self.raw.get("dataset", {})

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.raw.get("metrics", {})
