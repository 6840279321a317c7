"""The model bundle: the contract between training, the indexer and the API.

A bundle is a directory holding ``manifest.json`` and the files it names, each
with its sha256 and size. Reading a file verifies it first, so a truncated or
tampered file is refused with an error naming it.

Layout::

    manifest.json      model version, dimension, history length, dataset, metrics, files
    user_tower.npz     weights of the user tower (see core.towers.UserTower), or of each member of an ensemble
    item_tower.npz     weights and feature vocabularies of the item tower (or of each member)
    catalog.json       [{movie_id, title, year, genres, popularity}, ...]
    movie_vectors.npy  float32 [len(catalog), dimension], row i is catalog[i]
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import BundleError, TowerWeightsError
from core.features import Movie
from core.locations import is_s3
from core.manifest import (
    CATALOG,
    FORMAT_VERSION,
    ITEM_TOWER,
    MANIFEST,
    MOVIE_VECTORS,
    REQUIRED_FILES,
    USER_TOWER,
    Manifest,
    sha256_file,
)
from core.s3_bundle import fetch_bundle
from core.towers import ItemEncoder, UserEncoder, load_item_tower, load_user_tower

__all__ = [
    "CATALOG", "ITEM_TOWER", "MANIFEST", "MOVIE_VECTORS", "USER_TOWER", "Bundle", "BundleError", "Manifest",
    "open_bundle", "write_bundle",
]

@dataclass
class Bundle:
    """A verified view of a bundle directory; files are read (and checked) on first use."""

    path: Path
    manifest: Manifest
    _verified: set[str] = field(default_factory=set, repr=False)

    @property
    def model_version(self) -> str:
        return self.manifest.model_version

    @property
    def dimension(self) -> int:
        return self.manifest.dimension

    def file(self, name: str) -> Path:
        """Path of a bundle file after checking its size and sha256 against the manifest."""
        if name in self._verified:
            return self.path / name
        entry = self.manifest.files.get(name)
        if entry is None:
            raise BundleError(f"{self.path}: the manifest does not list {name}")
        target = self.path / name
        if not target.is_file():
            raise BundleError(f"{target}: missing from the bundle")
        size = target.stat().st_size
        if size != int(entry["bytes"]):
            raise BundleError(f"{target}: {size} bytes, the manifest says {entry['bytes']} (truncated or replaced)")
        digest = sha256_file(target)
        if digest != entry["sha256"]:
            raise BundleError(f"{target}: sha256 {digest[:12]}... does not match the manifest (tampered or corrupt)")
        self._verified.add(name)
        return target

    def verify(self) -> None:
        """Check every file's hash and every array's shape."""
        for name in self.manifest.files:
            self.file(name)
        _ = self.user_tower, self.item_tower, self.movie_vectors, self.catalog

    @cached_property
    def user_tower(self) -> UserEncoder:
        path = self.file(USER_TOWER)
        try:
            tower = load_user_tower(path)
        except (TowerWeightsError, ValueError, OSError) as exc:
            raise BundleError(f"{path}: {exc}") from exc
        if tower.dimension != self.dimension or tower.history_length != self.manifest.history_length:
            raise BundleError(
                f"{path}: dimension {tower.dimension} and history length {tower.history_length}, the "
                f"manifest says {self.dimension} and {self.manifest.history_length}"
            )
        return tower

    @cached_property
    def item_tower(self) -> ItemEncoder:
        path = self.file(ITEM_TOWER)
        try:
            tower = load_item_tower(path)
        except (TowerWeightsError, ValueError, OSError) as exc:
            raise BundleError(f"{path}: {exc}") from exc
        if tower.dimension != self.dimension:
            raise BundleError(f"{path}: dimension {tower.dimension}, the manifest says {self.dimension}")
        return tower

    @cached_property
    def catalog(self) -> list[Movie]:
        path = self.file(CATALOG)
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
            return [Movie.from_dict(row) for row in rows]
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{path}: not a valid catalog ({exc})") from exc

    @cached_property
    def movie_vectors(self) -> np.ndarray:
        path = self.file(MOVIE_VECTORS)
        try:
            vectors = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise BundleError(f"{path}: {exc}") from exc
        expected = (len(self.catalog), self.dimension)
        if vectors.dtype != np.float32 or vectors.shape != expected:
            raise BundleError(f"{path}: {vectors.dtype} {vectors.shape}, want float32 {expected}")
        return vectors


def open_bundle(
    location: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    files: Iterable[str] | None = None,
) -> Bundle:
    """Open a bundle from a directory or an ``s3://bucket/prefix`` and parse its manifest.

    The one place that opens a bundle. An ``s3://`` bundle is first downloaded into ``cache_dir``
    (default: a folder under the temp directory), keyed by model version and manifest hash
    (``core.s3_bundle``); ``files`` limits the download to those files (the manifest always comes).
    Files are verified (size, sha256, shapes) when they are first read. Raises ``BundleError``.
    """
    if is_s3(location):
        location = fetch_bundle(str(location), cache_dir=cache_dir, files=files)
    root = Path(location)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path}: no manifest (is {root} a model bundle? run `recs train`)")
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BundleError(f"{manifest_path}: not valid JSON ({exc})") from exc
    return Bundle(root, Manifest.parse(raw, str(manifest_path)))


def write_bundle(
    out_dir: str | os.PathLike[str],
    *,
    model_version: str,
    user_tower: UserEncoder,
    item_tower: ItemEncoder,
    catalog: Sequence[Movie],
    movie_vectors: np.ndarray,
    extra: Mapping[str, Any] | None = None,
) -> Bundle:
    """Write a complete bundle; the manifest is written last, atomically, so a reader never sees half."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if movie_vectors.shape != (len(catalog), user_tower.dimension):
        raise BundleError(f"movie_vectors {movie_vectors.shape} do not match {len(catalog)} movies")
    user_arrays: dict[str, Any] = dict(user_tower.arrays())
    item_arrays: dict[str, Any] = dict(item_tower.arrays())
    np.savez(out / USER_TOWER, **user_arrays)
    np.savez(out / ITEM_TOWER, **item_arrays)
    (out / CATALOG).write_text(json.dumps([m.to_dict() for m in catalog]), encoding="utf-8")
    np.save(out / MOVIE_VECTORS, np.ascontiguousarray(movie_vectors, dtype=np.float32))
    files = {name: {"sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size} for name in REQUIRED_FILES}
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model_version": model_version,
        "dimension": user_tower.dimension,
        "history_length": user_tower.history_length,
        "space_type": "innerproduct",
        "movies": len(catalog),
        **(dict(extra) if extra else {}),
        "files": files,
    }
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".manifest-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
    os.replace(tmp, out / MANIFEST)
    return open_bundle(out)
