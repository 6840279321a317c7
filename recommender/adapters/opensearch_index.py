"""``OpenSearchIndex``: the vector index port on OpenSearch k-NN, through ``opensearch-py``.

- Queries the alias (``movies`` by default), so an indexer's alias swap is picked up at once.
- k-NN query with every filter (genres, years, seen movies as ``must_not ids``) **inside** the
  ``knn`` clause, so ``k`` results survive filtering; ``_source`` never ships the vector back.
- Scores are mapped back from OpenSearch's per-space scores to the raw similarity, so they
  match ``NumpyIndex`` (inner product: ``s - 1`` for ``s >= 1``, else ``1 - 1/s``; cosine:
  ``2 s - 1``; L2 scores are passed through).
- The client comes from ``core.aws.opensearch_client`` (SigV4 on AWS, basic auth elsewhere, timeouts
  and bounded retries from the settings); every transport failure becomes
  ``IndexUnavailableError`` so the API can answer 503 or fall back.
- The model of the live vectors: ``_meta.model_version`` of the index behind the alias, re-read at
  most every ``model_check_seconds`` (no extra round trip per request). A search or vector read that
  names the model it expects checks the ``_index`` of its own answer (each concrete index's model is
  read once and remembered: an index never changes model), so a swap between the cached read and
  the search is caught too (``ModelMismatchError``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from core.features import Movie
from core.title_search import title_terms
from recommender.errors import IndexUnavailableError, ModelMismatchError
from recommender.ports import NO_FILTERS, BackendStatus, Filters, Hit

log = logging.getLogger(__name__)

SOURCE_EXCLUDES = ["embedding"]
MODEL_CHECK_SECONDS = 10.0
"""Default: how long the alias' model version is trusted before it is read again."""
_KNOWN_INDICES_MAX = 64


def innerproduct_from_score(score: float) -> float:
    """Invert OpenSearch's inner-product score (``ip + 1`` when ``ip >= 0``, else ``1 / (1 - ip)``)."""
    return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score


_SCORE_MAPS: dict[str, Callable[[float], float]] = {
    "innerproduct": innerproduct_from_score,
    "cosinesimil": lambda s: 2.0 * s - 1.0,
}


def filter_clause(filters: Filters, exclude_ids: Collection[int]) -> dict[str, Any] | None:
    """The ``bool`` filter that goes inside the knn clause (``None`` when nothing is filtered)."""
    must: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    if filters.genres_any:
        must.append({"terms": {"genres": sorted(set(filters.genres_any))}})
    if filters.genres_none:
        must_not.append({"terms": {"genres": sorted(set(filters.genres_none))}})
    if filters.year_min is not None or filters.year_max is not None:
        bounds: dict[str, int] = {}
        if filters.year_min is not None:
            bounds["gte"] = filters.year_min
        if filters.year_max is not None:
            bounds["lte"] = filters.year_max
        must.append({"range": {"year": bounds}})
    if exclude_ids:
        must_not.append({"ids": {"values": [str(i) for i in sorted(set(exclude_ids))]}})
    if not must and not must_not:
        return None
    clause: dict[str, Any] = {}
    if must:
        clause["filter"] = must
    if must_not:
        clause["must_not"] = must_not
    return {"bool": clause}


def knn_query(
    vector: np.ndarray, k: int, filters: Filters = NO_FILTERS, exclude_ids: Collection[int] = ()
) -> dict[str, Any]:
    """The search body: ``k`` nearest by the ``embedding`` field with the filter inside the clause."""
    knn: dict[str, Any] = {"vector": [float(x) for x in np.asarray(vector, dtype=np.float32).reshape(-1)], "k": k}
    clause = filter_clause(filters, exclude_ids)
    if clause is not None:
        knn["filter"] = clause
    return {"size": k, "_source": {"excludes": SOURCE_EXCLUDES}, "query": {"knn": {"embedding": knn}}}


def popular_query(k: int, filters: Filters = NO_FILTERS, exclude_ids: Collection[int] = ()) -> dict[str, Any]:
    clause = filter_clause(filters, exclude_ids)
    return {
        "size": k,
        "_source": {"excludes": SOURCE_EXCLUDES},
        "query": clause if clause is not None else {"match_all": {}},
        "sort": [{"popularity": {"order": "desc"}}, {"movie_id": {"order": "asc"}}],
    }


def title_query(text: str, limit: int) -> dict[str, Any]:
    """Title search as you type: every term of ``text`` in ``title``, the last as a prefix, most popular first.

    ``match_bool_prefix`` analyzes ``text`` with the field's analyzer (``standard``) and makes the last
    term a ``prefix`` query, which has no expansion limit (``max_expansions`` only bounds fuzzy
    terms), so short prefixes find every match; ``operator: and`` requires every term.
    """
    return {
        "size": limit,
        "_source": {"excludes": SOURCE_EXCLUDES},
        "track_total_hits": False,
        "query": {"match_bool_prefix": {"title": {"query": text, "operator": "and"}}},
        "sort": [{"popularity": {"order": "desc"}}, {"movie_id": {"order": "asc"}}],
    }


class OpenSearchIndex:
    """The vector index port on an OpenSearch alias (the production adapter)."""

    kind = "opensearch"

    def __init__(
        self, client: Any, alias: str = "movies", space_type: str = "innerproduct",
        model_check_seconds: float = MODEL_CHECK_SECONDS,
    ) -> None:
        self._client = client
        self.alias = alias
        self._to_similarity = _SCORE_MAPS.get(space_type, lambda s: s)
        self._model_check_seconds = model_check_seconds
        self._model_lock = threading.Lock()
        self._live: tuple[float, str | None] | None = None
        """(monotonic time read, model version) of the alias' index."""
        self._index_models: dict[str, str | None] = {}
        """Concrete index name -> its ``_meta.model_version`` (fixed for the life of an index)."""

    def reconnect(self, client: Any) -> None:
        """Use ``client`` from now on and close the old one (a SnapStart restore: its pooled connections and
        SigV4 credentials were captured in the snapshot). The alias' model is read again on the next request
        (the snapshot may be days old); what each concrete index holds is kept, an index never changes model."""
        old, self._client = self._client, client
        self._live = None
        try:
            old.close()
        except Exception as exc:  # a dead connection from the snapshot: nothing to keep
            log.debug("closing the previous OpenSearch client: %s", exc)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from opensearchpy.exceptions import NotFoundError, SerializationError, TransportError

        try:
            return fn()
        except NotFoundError as exc:
            if exc.error == "index_not_found_exception":
                raise IndexUnavailableError(
                    f"OpenSearch has no index or alias {self.alias!r} (run `recs index rebuild`)"
                ) from exc
            raise  # a missing document: callers that fetch one by id handle it
        except SerializationError as exc:  # an answer that is not JSON (a proxy's error page, say)
            raise IndexUnavailableError(f"OpenSearch {what} answered something that is not JSON: {exc}") from exc
        except TransportError as exc:
            raise IndexUnavailableError(f"OpenSearch {what} failed: {type(exc).__name__} {exc}") from exc
        except OSError as exc:
            raise IndexUnavailableError(f"OpenSearch {what} failed: {exc}") from exc

    @staticmethod
    def _movie(source: dict[str, Any]) -> Movie:
        return Movie.from_dict(source)

    def _hits(self, response: dict[str, Any], *, by_popularity: bool) -> list[Hit]:
        out = []
        for hit in response.get("hits", {}).get("hits", []):
            movie = self._movie(hit["_source"])
            score = movie.popularity if by_popularity else self._to_similarity(float(hit["_score"]))
            out.append(Hit(movie, float(score)))
        return out

    def search(
        self, vector: np.ndarray, k: int, filters: Filters = NO_FILTERS, exclude_ids: Collection[int] = (),
        *, model_version: str | None = None,
    ) -> list[Hit]:
        body = knn_query(vector, k, filters, exclude_ids)
        response = self._call("k-NN search", lambda: self._client.search(index=self.alias, body=body))
        if model_version is not None:
            hit_list = response.get("hits", {}).get("hits", [])
            self._check_model({str(h["_index"]) for h in hit_list if h.get("_index")}, model_version)
        hits = self._hits(response, by_popularity=False)
        hits.sort(key=lambda h: (-h.score, h.movie.movie_id))
        return hits[:k]

    def popular(self, k: int, filters: Filters = NO_FILTERS, exclude_ids: Collection[int] = ()) -> list[Hit]:
        body = popular_query(k, filters, exclude_ids)
        response = self._call("popularity search", lambda: self._client.search(index=self.alias, body=body))
        return self._hits(response, by_popularity=True)[:k]

    def _get_doc(self, movie_id: int, **params: Any) -> dict[str, Any] | None:
        from opensearchpy.exceptions import NotFoundError

        try:
            doc = self._call("get", lambda: self._client.get(index=self.alias, id=str(movie_id), **params))
        except NotFoundError:
            return None
        if not doc.get("found", True):
            return None
        return doc

    def get(self, movie_id: int) -> Movie | None:
        doc = self._get_doc(movie_id, _source_excludes=SOURCE_EXCLUDES)
        return None if doc is None or doc.get("_source") is None else self._movie(doc["_source"])

    def vector(self, movie_id: int, *, model_version: str | None = None) -> np.ndarray | None:
        doc = self._get_doc(movie_id, _source_includes=["embedding"])
        if doc is not None and model_version is not None and doc.get("_index"):
            self._check_model({str(doc["_index"])}, model_version)
        source = None if doc is None else doc.get("_source")
        if source is None or "embedding" not in source:
            return None
        return np.asarray(source["embedding"], dtype=np.float32)

    def existing(self, movie_ids: Collection[int]) -> set[int]:
        ids = sorted(set(movie_ids))
        if not ids:
            return set()
        body = {"size": len(ids), "_source": False, "query": {"ids": {"values": [str(i) for i in ids]}}}
        response = self._call("ids lookup", lambda: self._client.search(index=self.alias, body=body))
        return {int(hit["_id"]) for hit in response.get("hits", {}).get("hits", [])}

    def vectors(self, movie_ids: Collection[int]) -> dict[int, np.ndarray]:
        ids = sorted(set(movie_ids))
        if not ids:
            return {}
        response = self._call(
            "multi-get",
            lambda: self._client.mget(
                index=self.alias, body={"ids": [str(i) for i in ids]}, _source_includes=["embedding"]
            ),
        )
        out: dict[int, np.ndarray] = {}
        for doc in response.get("docs", []):
            source = doc.get("_source") or {}
            if doc.get("found") and "embedding" in source:
                out[int(doc["_id"])] = np.asarray(source["embedding"], dtype=np.float32)
        return out

    def search_titles(self, query: str, limit: int) -> list[Movie]:
        if not title_terms(query):
            return []  # nothing to match (OpenSearch would answer no hits too)
        body = title_query(query, limit)
        response = self._call("title search", lambda: self._client.search(index=self.alias, body=body))
        return [self._movie(hit["_source"]) for hit in response.get("hits", {}).get("hits", [])][:limit]

    def generation(self) -> int:
        return 0  # the shared generation lives in Redis (the indexer bumps it there)

    # -- the model of the live vectors ----------------------------------------------------
    def _read_models(self, name: str) -> dict[str, str | None]:
        """``{concrete index: _meta.model_version}`` of ``name`` (the alias, or one index)."""
        mappings = self._call("mapping", lambda: self._client.indices.get_mapping(index=name))
        found: dict[str, str | None] = {}
        for index, body in (mappings or {}).items():
            meta = ((body or {}).get("mappings") or {}).get("_meta") or {}
            version = meta.get("model_version")
            found[str(index)] = None if version is None else str(version)
        with self._model_lock:
            if len(self._index_models) + len(found) > _KNOWN_INDICES_MAX:
                self._index_models.clear()
            self._index_models.update(found)
        return found

    def model_version(self) -> str | None:
        live = self._live
        now = time.monotonic()
        if live is not None and now - live[0] < self._model_check_seconds:
            return live[1]
        versions = set(self._read_models(self.alias).values())
        if len(versions) > 1:
            shown = ", ".join(sorted(str(v) for v in versions))
            raise IndexUnavailableError(f"the alias {self.alias!r} spans indices of different models ({shown})")
        version = versions.pop() if versions else None
        self._live = (now, version)
        return version

    def _check_model(self, indices: set[str], expected: str) -> None:
        """Raise ``ModelMismatchError`` unless every index an answer came from holds model ``expected``."""
        for name in indices:
            with self._model_lock:
                known = name in self._index_models
                version = self._index_models.get(name)
            if not known:
                version = self._read_models(name).get(name)
            if version is not None and version != expected:
                self._live = None  # the alias moved: read it again at the next model_version()
                raise ModelMismatchError(expected, version, f"the alias {self.alias!r} now points at {name}")

    def status(self) -> BackendStatus:
        info: dict[str, Any] = {"alias": self.alias}
        try:
            aliases = self._call("alias lookup", lambda: self._client.indices.get_alias(name=self.alias))
            info["index"] = ",".join(sorted(aliases))
            count = self._call("count", lambda: self._client.count(index=self.alias))
            info["movies"] = int(count.get("count", 0))
            mappings = self._call("mapping", lambda: self._client.indices.get_mapping(index=self.alias))
            for mapping in mappings.values():
                meta = mapping.get("mappings", {}).get("_meta", {})
                if "model_version" in meta:
                    info["model_version"] = str(meta["model_version"])
        except IndexUnavailableError as exc:
            return BackendStatus(self.kind, False, str(exc), info)
        except Exception as exc:  # health describes, never raises
            return BackendStatus(self.kind, False, f"{type(exc).__name__}: {exc}", info)
        return BackendStatus(self.kind, True, "", info)
