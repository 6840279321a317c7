"""OpenSearch as an index target: versioned indices behind an alias, swapped in one ``_aliases`` call.

Only indices whose ``_meta.alias`` names this alias are ever listed, pruned or rolled back to.
An index that went live (after passing the count and probe checks) is marked ``_meta.live_at``;
only such indices are kept by retention and offered for rollback, so an index left behind by a
run that crashed before its swap is never served and is deleted by the next rebuild. Rolling back
marks the index it leaves ``_meta.rolled_back_at``: it is not offered again and goes at the next
rebuild.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from opensearchpy.exceptions import NotFoundError

from core.features import Movie
from core.index_schema import CREATED_BY, IndexParams, index_body, index_name
from indexer.bulk import BulkWriter
from indexer.catalog_stream import CatalogBatch
from indexer.documents import BulkAction, delete_actions, index_actions
from indexer.errors import BulkLoadError, IndexerError, NoLiveIndexError, RollbackError, VerificationError
from indexer.retry import Backoff
from indexer.target import DeltaResult, IndexInfo, LoadResult, Probe, SwapResult

PROBE_K = 10
FETCH_CHUNK = 500


class OpenSearchTarget:
    """Index target over an OpenSearch cluster (or anything speaking its REST API)."""

    kind = "opensearch"

    def __init__(
        self,
        client: Any,
        *,
        alias: str = "movies",
        params: IndexParams | None = None,
        backoff: Backoff | None = None,
        chunk_docs: int = 500,
        chunk_bytes: int = 5_000_000,
        url: str = "",
        workers: int = 1,
    ) -> None:
        self.client = client
        self.alias = alias
        self.params = params or IndexParams()
        self.backoff = backoff or Backoff()
        self.chunk_docs = chunk_docs
        self.chunk_bytes = chunk_bytes
        self.url = url
        self.workers = workers
        self._meta: dict[str, dict[str, Any]] = {}

    def describe(self) -> str:
        host = self.url.split("@")[-1] if self.url else "OpenSearch"
        return f"opensearch {host} alias {self.alias}"

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        return self.backoff.call(fn, what)

    # -- reading -----------------------------------------------------------------
    def _aliased(self) -> list[str]:
        def get() -> Any:
            try:
                return self.client.indices.get_alias(name=self.alias)
            except NotFoundError:
                return {}

        return sorted(self._call(f"reading alias {self.alias}", get))

    def _owned(self) -> dict[str, IndexInfo]:
        def get() -> Any:
            try:
                return self.client.indices.get(index=f"{self.alias}-*", expand_wildcards="open")
            except NotFoundError:
                return {}

        found = self._call(f"listing indices {self.alias}-*", get)
        out = {}
        for name, body in found.items():
            meta = (body.get("mappings") or {}).get("_meta") or {}
            if meta.get("alias") != self.alias or meta.get("created_by") != CREATED_BY:
                continue
            self._meta[name] = dict(meta)
            created = float((body.get("settings") or {}).get("index", {}).get("creation_date", 0)) / 1000.0
            served = bool(meta.get("live_at")) and not meta.get("rolled_back_at")
            out[name] = IndexInfo(name, meta.get("model_version"), created, served)
        return out

    def live(self) -> IndexInfo | None:
        names = self._aliased()
        if not names:
            return None
        if len(names) > 1:
            raise IndexerError(f"alias {self.alias} points at {len(names)} indices ({', '.join(names)}); "
                               "fix it by hand with one _aliases call")
        info = self._owned().get(names[0])
        if info is None:  # an index this indexer did not create (e.g. made by hand): still the live one
            return IndexInfo(names[0], self._model_version_of(names[0]), 0.0, True)
        return info

    def _model_version_of(self, name: str) -> str | None:
        mapping = self._call(f"reading the mapping of {name}", lambda: self.client.indices.get_mapping(index=name))
        meta = (mapping.get(name, {}).get("mappings") or {}).get("_meta") or {}
        return meta.get("model_version")

    def indices(self) -> list[IndexInfo]:
        return sorted(self._owned().values(), key=lambda i: (i.created, i.name))

    def count(self, name: str) -> int:
        return int(self._call(f"counting {name}", lambda: self.client.count(index=name))["count"])

    def generation(self) -> int | None:
        return None

    # -- full rebuild ------------------------------------------------------------
    def new_name(self, model_version: str) -> str:
        name = index_name(self.alias, model_version)
        while self.client.indices.exists(index=name):
            name = index_name(self.alias, model_version)
        return name

    def create(self, name: str, *, model_version: str, dimension: int, space_type: str) -> None:
        body = index_body(dimension=dimension, model_version=model_version, alias=self.alias,
                          space_type=space_type, params=self.params)
        self._meta[name] = dict(body["mappings"]["_meta"])
        self._call(f"creating index {name}", lambda: self.client.indices.create(index=name, body=body))

    def _writer(self, on_docs: Callable[[int], None]) -> BulkWriter:
        return BulkWriter(self.client, chunk_docs=self.chunk_docs, chunk_bytes=self.chunk_bytes,
                          backoff=self.backoff, on_chunk=on_docs, workers=self.workers)

    def load(self, name: str, batches: Iterable[CatalogBatch], on_docs: Callable[[int], None]) -> LoadResult:
        def actions() -> Iterator[BulkAction]:
            for batch in batches:
                yield from index_actions(name, batch.movies, batch.vectors)

        result = self._writer(on_docs).write(actions())
        if result.failures:
            raise BulkLoadError(name, result.failures, result.stopped_early)
        return LoadResult(result.succeeded, result.retried)

    def finish(self, name: str) -> None:
        refresh = {"index": {"refresh_interval": self.params.refresh_interval}}
        self._call(f"restoring refresh on {name}", lambda: self.client.indices.put_settings(index=name, body=refresh))
        self._call(f"refreshing {name}", lambda: self.client.indices.refresh(index=name))

    def verify(self, name: str, expected: int, probes: Sequence[Probe]) -> None:
        count = self.count(name)
        if count != expected:
            raise VerificationError(f"{name}: {count} documents, the catalog has {expected}")
        for probe in probes:
            body = {
                "size": PROBE_K,
                "_source": {"excludes": ["embedding"]},
                "query": {"knn": {"embedding": {"vector": [float(x) for x in probe.vector], "k": PROBE_K}}},
            }

            def search(body: dict[str, Any] = body) -> Any:
                return self.client.search(index=name, body=body)

            hits = self._call(f"probe query for movie {probe.movie_id} on {name}", search)["hits"]["hits"]
            if not hits:
                raise VerificationError(f"{name}: the probe for movie {probe.movie_id} found nothing")
            top = float(hits[0]["_score"])
            own = next((float(h["_score"]) for h in hits if h["_id"] == str(probe.movie_id)), None)
            if own is None or own < top - 1e-5 * max(1.0, abs(top)):
                raise VerificationError(f"{name}: the probe for movie {probe.movie_id} found movie "
                                        f"{hits[0]['_id']} first" + ("" if own is not None else " (and not itself)"))

    def _mark(self, name: str, key: str) -> None:
        """Record a moment in the index's ``_meta`` (``live_at``, ``rolled_back_at``)."""
        if name not in self._meta:
            self._owned()
        meta = {**self._meta.get(name, {}), key: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        self._call(f"marking {name} {key.removesuffix('_at').replace('_', ' ')}",
                   lambda: self.client.indices.put_mapping(index=name, body={"_meta": meta}))
        self._meta[name] = meta

    def _swap_alias(self, name: str) -> str | None:
        current = self._aliased()
        actions: list[dict[str, Any]] = [{"remove": {"index": old, "alias": self.alias}} for old in current]
        actions.append({"add": {"index": name, "alias": self.alias}})
        self._call(f"pointing alias {self.alias} at {name}",
                   lambda: self.client.indices.update_aliases(body={"actions": actions}))
        return current[0] if current else None

    def swap(self, name: str, keep: int) -> SwapResult:
        owned = self._owned()
        previous = self._swap_alias(name)
        for served in (name, previous):  # the old one too, in case a crash came between its swap and its mark
            if served in owned and not owned[served].served:
                self._mark(served, "live_at")
        owned = self._owned()
        older = sorted((i for i in owned.values() if i.name != name and i.served),
                       key=lambda i: (i.created, i.name), reverse=True)
        kept = {i.name for i in older[:keep]}
        doomed = sorted(n for n in owned if n != name and n not in kept)
        for old in doomed:
            self._delete(old)
        return SwapResult(previous, name, doomed)

    def _delete(self, name: str) -> None:
        self._call(f"deleting index {name}",
                   lambda: self.client.indices.delete(index=name, ignore_unavailable=True))

    def discard(self, name: str) -> None:
        if name not in self._aliased():
            self._delete(name)

    # -- rollback ----------------------------------------------------------------
    def rollback_candidates(self) -> list[IndexInfo]:
        live_names = self._aliased()
        older = [i for i in self._owned().values() if i.name not in live_names and i.served]
        return sorted(older, key=lambda i: (i.created, i.name), reverse=True)

    def rollback(self, to: str) -> SwapResult:
        """Swap back to ``to``; the index left and any skipped candidate stop being candidates.

        They are marked ``rolled_back_at`` (so a later rollback never returns to them) and the next
        rebuild deletes them, as the embedded store does.
        """
        names = [i.name for i in self.rollback_candidates()]
        if to not in names:
            raise RollbackError(f"{to} is not an earlier index of alias {self.alias} "
                                f"(candidates: {', '.join(names) or 'none'})")
        before = self._swap_alias(to)
        for abandoned in [*([before] if before else []), *names[: names.index(to)]]:
            if abandoned in self._meta:
                self._mark(abandoned, "rolled_back_at")
        return SwapResult(before, to)

    # -- incremental -------------------------------------------------------------
    def fetch(self, movie_ids: Sequence[int]) -> dict[int, Movie]:
        out: dict[int, Movie] = {}
        ids = [str(m) for m in movie_ids]
        for start in range(0, len(ids), FETCH_CHUNK):
            chunk = ids[start : start + FETCH_CHUNK]

            def mget(ids: list[str] = chunk) -> Any:
                return self.client.mget(index=self.alias, body={"ids": ids}, _source_excludes=["embedding"])

            docs = self._call(f"reading {len(chunk)} documents from {self.alias}", mget)["docs"]
            for doc in docs:
                if doc.get("found"):
                    movie = Movie.from_dict(doc["_source"])
                    out[movie.movie_id] = movie
        return out

    def apply(self, live: IndexInfo, upserts: Sequence[Movie], vectors: np.ndarray,
              deletes: Sequence[int]) -> DeltaResult:
        if not self._aliased():
            raise NoLiveIndexError(f"alias {self.alias} points nowhere")

        def actions() -> Iterator[BulkAction]:
            yield from index_actions(live.name, upserts, vectors)
            yield from delete_actions(live.name, deletes)

        result = self._writer(lambda n: None).write(actions())
        self._call(f"refreshing {live.name}", lambda: self.client.indices.refresh(index=live.name))
        if result.failures:
            raise BulkLoadError(live.name, result.failures, result.stopped_early)
        return DeltaResult(live.name, len(upserts), len(deletes) - result.not_found, result.not_found,
                           before=live.name, after=live.name)
