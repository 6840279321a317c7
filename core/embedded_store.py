"""The embedded vector store: what ``recs index`` writes locally and ``NumpyIndex`` reads.

It mirrors the OpenSearch layout (versioned indices behind an alias, a catalog
generation) on the local file system, so the local path exercises the same
refresh logic as production::

    <root>/alias.json            {"index": NAME, "generation": N, "previous": [NAME, ...]}
    <root>/indices/NAME/meta.json     {"model_version", "dimension", "space_type", "count"}
    <root>/indices/NAME/catalog.json  [{movie_id, title, year, genres, popularity}, ...]
    <root>/indices/NAME/vectors.npy   float32 [count, dimension], row i is catalog[i]

Writers build a complete ``indices/NAME`` directory first and then replace
``alias.json`` atomically (``os.replace``), so a reader sees the old snapshot
or the new one, never a half-written one. Readers reload when ``alias.json``
changes (one ``stat`` per call).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import EmbeddedStoreError
from core.features import Movie

ALIAS_FILE = "alias.json"
INDICES_DIR = "indices"


@dataclass(frozen=True)
class EmbeddedSnapshot:
    """One published index: its catalog and vectors, aligned row by row."""

    name: str
    generation: int
    model_version: str
    space_type: str
    catalog: list[Movie]
    vectors: np.ndarray


def _atomic_write_json(path: Path, payload: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class EmbeddedStore:
    """Reader and low-level writer of an embedded store directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._snapshot: EmbeddedSnapshot | None = None

    # -- reading -------------------------------------------------------------
    def alias(self) -> dict[str, Any] | None:
        path = self.root / ALIAS_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise EmbeddedStoreError(f"{path}: not valid JSON ({exc})") from exc

    def generation(self) -> int:
        alias = self.alias()
        return int(alias["generation"]) if alias else 0

    def current(self) -> EmbeddedSnapshot:
        """The snapshot the alias points at, reloaded only when ``alias.json`` changed."""
        path = self.root / ALIAS_FILE
        try:
            st = path.stat()
        except FileNotFoundError as exc:
            raise EmbeddedStoreError(f"{self.root}: no index published yet (run `recs index rebuild`)") from exc
        stamp = (st.st_mtime_ns, st.st_ino)
        with self._lock:
            if self._snapshot is None or stamp != self._stamp:
                alias = self.alias()
                if not alias:
                    raise EmbeddedStoreError(f"{path}: empty alias")
                self._snapshot = self.read_index(str(alias["index"]), int(alias["generation"]))
                self._stamp = stamp
            return self._snapshot

    def read_index(self, name: str, generation: int = 0) -> EmbeddedSnapshot:
        folder = self.root / INDICES_DIR / name
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            catalog = [Movie.from_dict(r) for r in json.loads((folder / "catalog.json").read_text(encoding="utf-8"))]
            vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EmbeddedStoreError(f"{folder}: unreadable index ({exc})") from exc
        if vectors.shape != (len(catalog), int(meta["dimension"])) or int(meta["count"]) != len(catalog):
            raise EmbeddedStoreError(f"{folder}: {vectors.shape} vectors for {len(catalog)} movies")
        return EmbeddedSnapshot(
            name=name,
            generation=generation,
            model_version=str(meta["model_version"]),
            space_type=str(meta.get("space_type", "innerproduct")),
            catalog=catalog,
            vectors=vectors.astype(np.float32, copy=False),
        )

    def index_names(self) -> list[str]:
        folder = self.root / INDICES_DIR
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def index_meta(self, name: str) -> dict[str, Any] | None:
        """``meta.json`` of an index directory, or None if the index is incomplete or missing."""
        path = self.root / INDICES_DIR / name / "meta.json"
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    # -- writing (used by the indexer) ----------------------------------------
    def delete_index(self, name: str) -> None:
        """Remove an index directory; the one the alias points at is refused."""
        alias = self.alias()
        if alias and alias.get("index") == name:
            raise EmbeddedStoreError(f"{self.root}: {name} is live; point the alias elsewhere first")
        folder = self.root / INDICES_DIR / name
        if folder.parent != self.root / INDICES_DIR or not name:
            raise EmbeddedStoreError(f"{name!r} is not an index name")
        shutil.rmtree(folder, ignore_errors=True)

    def write_index(
        self, name: str, catalog: list[Movie], vectors: np.ndarray, model_version: str,
        space_type: str = "innerproduct",
    ) -> Path:
        """Write a complete index directory (not yet visible: the alias still points elsewhere)."""
        if vectors.shape[0] != len(catalog):
            raise EmbeddedStoreError(f"{len(catalog)} movies but {vectors.shape[0]} vectors")
        folder = self.root / INDICES_DIR / name
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))
        (folder / "catalog.json").write_text(json.dumps([m.to_dict() for m in catalog]), encoding="utf-8")
        meta = {"model_version": model_version, "dimension": int(vectors.shape[1]), "space_type": space_type,
                "count": len(catalog)}
        _atomic_write_json(folder / "meta.json", meta)
        return folder

    def publish(self, name: str, previous: list[str] | None = None, bump: bool = True) -> dict[str, Any]:
        """Point the alias at ``name`` in one atomic replace, bumping the catalog generation."""
        if not (self.root / INDICES_DIR / name / "meta.json").is_file():
            raise EmbeddedStoreError(f"{self.root}: index {name} is not complete")
        old = self.alias() or {}
        alias = {
            "index": name,
            "generation": int(old.get("generation", 0)) + (1 if bump else 0),
            "previous": previous if previous is not None else list(old.get("previous", [])),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write_json(self.root / ALIAS_FILE, alias)
        return alias
