"""TEST EMULATION of OpenSearch k-NN search, in front of an in-memory osmem server.

osmem (the in-memory OpenSearch the tests use) implements the REST API, mappings with
``knn_vector`` fields and ``index.knn`` settings, but answers 400 to the ``knn`` query. This module
is the one place where the test suite fills that gap. :class:`KnnEmulationProxy` is a small threaded
HTTP proxy on 127.0.0.1: every request is forwarded to osmem unchanged (method, path, query
string, headers, body; status, headers and body come back unchanged), except ``_search``
requests whose query is a ``knn`` clause, which it answers itself.

What it follows (OpenSearch documentation: "Approximate k-NN search", "k-NN query", "Filtering
data / efficient filtering", "Radial search", "Spaces"):

* ``{"query": {"knn": {FIELD: {"vector": [...], "k": K, "filter": Q, "boost": B}}}}``; the
  field's space type comes from its mapping (``method.space_type`` or the top-level ``space_type``,
  default ``l2``). The ``filter`` is applied *before* the top-k (efficient filtering), so ``k`` results
  survive it whenever at least ``k`` documents match; then ``from``/``size`` (default 10) page through
  the ``k`` hits and ``hits.total`` is the number of k-NN hits.
* Radial search: exactly one of ``k``, ``max_distance``, ``min_score``.
* Scores, per space type, with ``d`` the engine's distance:
  ``l2``: ``1 / (1 + sum((x - y)^2))``; ``l1``: ``1 / (1 + sum|x - y|)``; ``linf``: ``1 / (1 + max|x - y|)``;
  ``cosinesimil``: ``(2 - (1 - cos)) / 2 = (1 + cos) / 2``;
  ``innerproduct`` (faiss and nmslib: ``d = -x.y``, score ``1 / (1 + d)`` if ``d >= 0`` else ``1 - d``;
  lucene: ``d = x.y``, score ``d + 1`` if ``d > 0`` else ``1 / (1 - d)``; the same function of the dot
  product for every engine). Arithmetic is float32 like the engines. ``boost`` multiplies the score.
* A knn clause as the only scoring clause of a ``bool`` (``must`` or ``should``, with ``filter`` /
  ``must_not`` beside it): the k nearest are found first and the bool's other clauses then remove
  hits (post-filtering, so fewer than ``k`` may remain), as OpenSearch does; the ``post_filter``
  parameter works the same way. A knn clause in ``should`` beside a ``filter`` (where
  ``minimum_should_match`` defaults to 0) is refused.
* ``_source`` (bool, list, includes/excludes, also as URL parameters), ``from``, ``size``,
  ``track_total_hits``, top-level ``min_score``, ``rest_total_hits_as_int``; malformed clauses
  (no vector, wrong dimension, ``k < 1`` or above 10000, unknown parameters, a field that is not a
  ``knn_vector``) get a 400 shaped like OpenSearch's error bodies.

What it does NOT do: it is exact search, not approximate (no HNSW graph, so recall is always
1.0 and ``ef_search``/``method_parameters`` are accepted but ignored); it acts like a single shard
(real multi-shard indices return up to ``k`` hits per shard before ``size`` is applied); equal
scores are ordered by ``_id`` rather than by Lucene's internal doc order; no nested vectors,
``rescore``, ``expand_nested_docs``, byte/binary vectors, ``hamming``, ``sort``, aggregations, ``_msearch``
or ``hybrid`` queries with knn (those get a 400 naming the unsupported part, so a test never
passes on a silent approximation). Anything that is not a knn search goes to osmem untouched.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import math
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import numpy as np

MAX_K = 10_000
PAGE_SIZE = 5_000
SEARCH_BODY_KEYS = {
    "query",
    "size",
    "from",
    "_source",
    "track_total_hits",
    "timeout",
    "min_score",
    "version",
    "post_filter",
}
KNN_CLAUSE_KEYS = {"vector", "k", "filter", "boost", "max_distance", "min_score", "method_parameters", "_name"}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
SPACE_TYPES = {"l2", "l1", "linf", "cosinesimil", "innerproduct"}

Json = dict[str, Any]


class KnnEmulationError(Exception):
    """A request the emulation answers with an OpenSearch-shaped error instead of forwarding."""

    def __init__(self, status: int, error_type: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.error_type = error_type
        self.reason = reason

    def body(self) -> Json:
        cause = {"type": self.error_type, "reason": self.reason}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


class UpstreamError(Exception):
    """osmem answered an error while the emulation was fetching candidates: returned as-is."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.raw = body
        self.content_type = content_type


def _bad(reason: str, error_type: str = "parsing_exception") -> KnnEmulationError:
    return KnnEmulationError(400, error_type, reason)


# --------------------------------------------------------------------------------------------
# Scores


def knn_scores(space_type: str, query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """OpenSearch scores of ``vectors`` (n, d) against ``query`` (d,) for ``space_type``, float32 math."""
    q = np.asarray(query, dtype=np.float32)
    v = np.asarray(vectors, dtype=np.float32).reshape(-1, q.shape[0])
    one = np.float32(1.0)
    if space_type == "l2":
        diff = v - q
        return one / (one + np.einsum("ij,ij->i", diff, diff))
    if space_type == "l1":
        return one / (one + np.abs(v - q).sum(axis=1, dtype=np.float32))
    if space_type == "linf":
        return one / (one + np.abs(v - q).max(axis=1, initial=np.float32(0.0)))
    if space_type == "cosinesimil":
        norms = np.linalg.norm(v, axis=1) * np.linalg.norm(q)
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where(norms > 0, (v @ q) / norms, np.float32(0.0)).astype(np.float32)
        return (one + cos) / np.float32(2.0)
    if space_type == "innerproduct":
        dot = (v @ q).astype(np.float32)
        with np.errstate(divide="ignore"):
            return np.where(dot > 0, dot + one, one / (one - np.minimum(dot, 0))).astype(np.float32)
    raise _bad(f"space type [{space_type}] is not supported by the k-NN emulation", "illegal_argument_exception")


def distance_from_score(space_type: str, score: float) -> float:
    """Inverse of the score function for the distance-based spaces (used for ``max_distance``)."""
    if space_type in {"l2", "l1", "linf"}:
        return 1.0 / score - 1.0
    if space_type == "cosinesimil":
        return 2.0 - 2.0 * score
    if space_type == "innerproduct":  # faiss distance d = -dot
        return 1.0 / score - 1.0 if score <= 1.0 else 1.0 - score
    raise _bad(f"space type [{space_type}] is not supported by the k-NN emulation", "illegal_argument_exception")


# --------------------------------------------------------------------------------------------
# Parsing the request


@dataclass(frozen=True)
class KnnClause:
    field: str
    vector: tuple[float, ...]
    k: int | None
    max_distance: float | None
    min_score: float | None
    filter: Json | None
    boost: float


@dataclass(frozen=True)
class KnnSearch:
    """A ``_search`` whose scoring comes from one knn clause, with optional bool post-filters."""

    knn: KnnClause
    post_filters: tuple[Json, ...]
    post_must_not: tuple[Json, ...]
    bool_boost: float
    size: int
    from_: int
    source: Any
    source_includes: tuple[str, ...]
    source_excludes: tuple[str, ...]
    min_score: float | None
    track_total_hits: Any


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _bad(f"[knn] {name} must be a number")
    try:
        out = float(value)
    except ValueError:
        raise _bad(f"[knn] {name} must be a number") from None
    if not math.isfinite(out):
        raise _bad(f"[knn] {name} must be finite")
    return out


def parse_knn_clause(raw: Any) -> KnnClause:
    """Validate ``{"FIELD": {"vector": ..., "k": ...}}`` as OpenSearch does."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise _bad("[knn] query malformed, expected exactly one field")
    field, spec = next(iter(raw.items()))
    if not isinstance(spec, dict):
        raise _bad(f"[knn] query malformed for field [{field}]: expected an object")
    unknown = sorted(set(spec) - KNN_CLAUSE_KEYS)
    if unknown:
        raise _bad(f"[knn] unknown token [{unknown[0]}] (not supported by the k-NN emulation)")
    vector = spec.get("vector")
    if vector is None:
        raise _bad("[knn] requires query vector", "illegal_argument_exception")
    if not isinstance(vector, list) or not vector:
        raise _bad("[knn] query vector must be a non-empty array of numbers", "illegal_argument_exception")
    values = tuple(_number(x, "vector element") for x in vector)
    modes = [name for name in ("k", "max_distance", "min_score") if spec.get(name) is not None]
    if len(modes) != 1:
        raise _bad("[knn] requires exactly one of k, distance or score to be set", "illegal_argument_exception")
    k: int | None = None
    if "k" in modes:
        raw_k = spec["k"]
        if isinstance(raw_k, bool) or not isinstance(raw_k, int):
            raise _bad("[knn] k must be an integer")
        if raw_k < 1 or raw_k > MAX_K:
            raise _bad(f"[knn] requires k to be in the range (0, {MAX_K}]", "illegal_argument_exception")
        k = raw_k
    max_distance = _number(spec["max_distance"], "max_distance") if "max_distance" in modes else None
    min_score = _number(spec["min_score"], "min_score") if "min_score" in modes else None
    if min_score is not None and min_score <= 0:
        raise _bad("[knn] requires min_score to be greater than 0", "illegal_argument_exception")
    flt = spec.get("filter")
    if flt is not None and not isinstance(flt, dict):
        raise _bad("[knn] filter must be a query object")
    boost = _number(spec.get("boost", 1.0), "boost")
    return KnnClause(field, values, k, max_distance, min_score, flt, boost)


def _source_param(params: Mapping[str, list[str]], name: str) -> tuple[str, ...]:
    out: list[str] = []
    for value in params.get(name, []):
        out.extend(p for p in value.split(",") if p)
    return tuple(out)


def find_knn_search(body: Any, params: Mapping[str, list[str]]) -> KnnSearch | None:
    """The knn search in a ``_search`` body, or None when the request has no knn clause to emulate."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), dict):
        return None
    query = body["query"]
    if "knn" in query:
        if len(query) != 1:
            raise _bad("[knn] query malformed: more than one query type at the top level")
        knn = parse_knn_clause(query["knn"])
        post_filters: list[Json] = []
        post_must_not: list[Json] = []
        bool_boost = 1.0
    elif isinstance(query.get("bool"), dict) and _bool_has_knn(query["bool"]):
        knn, post_filters, post_must_not, bool_boost = _parse_bool_with_knn(query["bool"])
    else:
        return None
    if isinstance(body.get("post_filter"), dict):
        post_filters.append(body["post_filter"])  # the post_filter parameter: applied to the k results
    unsupported = sorted(set(body) - SEARCH_BODY_KEYS)
    if unsupported:
        raise _bad(f"[{unsupported[0]}] is not supported together with knn by the k-NN emulation")
    size = _int_param(params, "size", body.get("size", 10))
    from_ = _int_param(params, "from", body.get("from", 0))
    source: Any = body.get("_source", True)
    if "_source" in params:
        value = params["_source"][-1]
        source = {"true": True, "false": False}.get(value.lower(), value.split(","))
    min_score = body.get("min_score")
    return KnnSearch(
        knn=knn,
        post_filters=tuple(post_filters),
        post_must_not=tuple(post_must_not),
        bool_boost=bool_boost,
        size=size,
        from_=from_,
        source=source,
        source_includes=_source_param(params, "_source_includes"),
        source_excludes=_source_param(params, "_source_excludes"),
        min_score=None if min_score is None else _number(min_score, "min_score"),
        track_total_hits=body.get("track_total_hits", True),
    )


def _int_param(params: Mapping[str, list[str]], name: str, default: Any) -> int:
    value = params[name][-1] if name in params else default
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise _bad(f"[{name}] must be an integer") from None
    if out < 0:
        raise _bad(f"[{name}] parameter cannot be negative, found [{out}]", "illegal_argument_exception")
    return out


def _bool_has_knn(clause: Json) -> bool:
    return any(isinstance(q, dict) and "knn" in q for key in ("must", "should") for q in _as_list(clause.get(key)))


def _parse_bool_with_knn(clause: Json) -> tuple[KnnClause, list[Json], list[Json], float]:
    allowed = {"must", "should", "filter", "must_not", "boost", "minimum_should_match", "_name"}
    unknown = sorted(set(clause) - allowed)
    if unknown:
        raise _bad(f"[bool] unknown token [{unknown[0]}]")
    scoring = _as_list(clause.get("must")) + _as_list(clause.get("should"))
    if len(scoring) != 1 or not isinstance(scoring[0], dict) or set(scoring[0]) != {"knn"}:
        raise _bad(
            "the k-NN emulation supports a knn clause in a bool only as the single must/should clause "
            "(with filter/must_not beside it)",
            "unsupported_operation_exception",
        )
    msm = clause.get("minimum_should_match")
    if clause.get("should"):
        # OpenSearch: should clauses are optional (minimum_should_match 0) once must or filter is present.
        effective = msm if msm is not None else (0 if clause.get("filter") else 1)
        if str(effective) not in ("1", "100%"):
            raise _bad(
                "a knn clause in bool.should next to a filter (minimum_should_match 0: every filtered "
                "document matches) is not supported by the k-NN emulation; use bool.must",
                "unsupported_operation_exception",
            )
    knn = parse_knn_clause(scoring[0]["knn"])
    return (
        knn,
        [q for q in _as_list(clause.get("filter")) if isinstance(q, dict)],
        [q for q in _as_list(clause.get("must_not")) if isinstance(q, dict)],
        _number(clause.get("boost", 1.0), "boost"),
    )


# --------------------------------------------------------------------------------------------
# Talking to osmem


class Upstream:
    """Plain HTTP to the osmem clone (one connection per request: osmem closes after each)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {url!r}")
        self.host = parsed.hostname
        self.port = parsed.port or 80
        self.timeout = timeout

    def raw(
        self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, target, body=body, headers=dict(headers))
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None) -> Json:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        status, resp_headers, raw = self.raw(method, path, data, headers)
        if status >= 300:
            content_type = next((v for k, v in resp_headers if k.lower() == "content-type"), "application/json")
            raise UpstreamError(status, raw, content_type)
        out = json.loads(raw) if raw else {}
        if not isinstance(out, dict):
            raise UpstreamError(502, raw, "application/json")
        return out


def _quote_target(target: str) -> str:
    return urllib.parse.quote(target, safe=",*-_.")


def _field_mapping(properties: Mapping[str, Any], dotted: str) -> Mapping[str, Any] | None:
    node: Mapping[str, Any] | None = None
    props: Any = properties
    for part in dotted.split("."):
        if not isinstance(props, Mapping) or part not in props:
            return None
        node = props[part]
        props = node.get("properties") if isinstance(node, Mapping) else None
    return node


def _space_type(mapping: Mapping[str, Any]) -> str:
    method = mapping.get("method")
    space = None
    if isinstance(method, Mapping):
        space = method.get("space_type")
    space = space or mapping.get("space_type") or "l2"
    space = str(space)
    if space not in SPACE_TYPES:
        raise _bad(f"space type [{space}] is not supported by the k-NN emulation", "illegal_argument_exception")
    return space


def _get_path(source: Any, dotted: str) -> Any:
    node = source
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _matches(name: str, patterns: Sequence[str]) -> bool:
    import fnmatch

    return any(name == p or fnmatch.fnmatchcase(name, p) or name.startswith(p + ".") for p in patterns)


def _filter_source(source: Json, includes: Sequence[str], excludes: Sequence[str]) -> Json:
    def walk(node: Json, prefix: str) -> Json:
        out: Json = {}
        for key, value in node.items():
            path = f"{prefix}{key}"
            if excludes and _matches(path, excludes):
                continue
            if isinstance(value, dict):
                inner = walk(value, path + ".")
                if includes and not inner and not _matches(path, includes):
                    continue
                out[key] = inner
            elif not includes or _matches(path, includes):
                out[key] = value
        return out

    return walk(source, "")


def _source_rules(search: KnnSearch) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    """(return the source at all, includes, excludes) from body and URL parameters."""
    includes: list[str] = list(search.source_includes)
    excludes: list[str] = list(search.source_excludes)
    src = search.source
    if src is False:
        return False, (), ()
    if isinstance(src, str):
        includes.append(src)
    elif isinstance(src, list):
        includes.extend(str(s) for s in src)
    elif isinstance(src, dict):
        includes.extend(str(s) for s in _as_list(src.get("includes", src.get("include"))))
        excludes.extend(str(s) for s in _as_list(src.get("excludes", src.get("exclude"))))
    return True, tuple(includes), tuple(excludes)


@dataclass
class _Candidate:
    index: str
    doc_id: str
    source: Json
    score: float = 0.0


class KnnSearchEngine:
    """Runs a :class:`KnnSearch` against osmem: resolve, fetch candidates, score, page, shape."""

    def __init__(self, upstream: Upstream, page_size: int = PAGE_SIZE) -> None:
        self.upstream = upstream
        self.page_size = page_size

    def run(self, target: str, search: KnnSearch) -> Json:
        started = time.monotonic()
        knn = search.knn
        spaces = self._space_types(target, knn.field)
        for _space, dimension in spaces.values():
            if len(knn.vector) != dimension:
                raise _bad(
                    f"Query vector has invalid dimension: {len(knn.vector)}. Dimension should be: {dimension}",
                    "illegal_argument_exception",
                )
        query_vector = np.asarray(knn.vector, dtype=np.float32)
        candidates = list(self._candidates(target, knn.filter))
        scored: list[_Candidate] = []
        by_index: dict[str, list[_Candidate]] = {}
        for cand in candidates:
            by_index.setdefault(cand.index, []).append(cand)
        for index, group in by_index.items():
            if index not in spaces:
                continue  # the field is not mapped in this index: no vector, no hit
            space = spaces[index][0]
            with_vectors = [c for c in group if isinstance(_get_path(c.source, knn.field), list)]
            if not with_vectors:
                continue
            matrix = np.asarray([_get_path(c.source, knn.field) for c in with_vectors], dtype=np.float32)
            scores = knn_scores(space, query_vector, matrix)
            keep = np.ones(len(with_vectors), dtype=bool)
            if knn.min_score is not None:
                keep &= scores >= np.float32(knn.min_score)
            if knn.max_distance is not None:
                distances = np.asarray([distance_from_score(space, float(s)) for s in scores])
                keep &= distances <= knn.max_distance
            for cand, score, kept in zip(with_vectors, scores, keep, strict=True):
                if kept:
                    cand.score = float(score) * knn.boost
                    scored.append(cand)
        scored.sort(key=lambda c: (-c.score, c.index, c.doc_id))
        if knn.k is not None:
            scored = scored[: knn.k]
        if search.post_filters or search.post_must_not:
            scored = self._post_filter(target, scored, search)
        for cand in scored:
            cand.score *= search.bool_boost
        if search.min_score is not None:
            scored = [c for c in scored if c.score >= search.min_score]
        total = len(scored)
        page = scored[search.from_ : search.from_ + search.size]
        keep_source, includes, excludes = _source_rules(search)
        hits = []
        for cand in page:
            hit: Json = {"_index": cand.index, "_id": cand.doc_id, "_score": cand.score}
            if keep_source:
                hit["_source"] = _filter_source(cand.source, includes, excludes)
            hits.append(hit)
        took = int((time.monotonic() - started) * 1000)
        total_obj: Any = {"value": total, "relation": "eq"}
        return {
            "took": took,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {
                "total": total_obj,
                "max_score": scored[0].score if scored else None,
                "hits": hits,
            },
        }

    def _space_types(self, target: str, field: str) -> dict[str, tuple[str, int]]:
        mappings = self.upstream.json("GET", f"/{_quote_target(target)}/_mapping")
        out: dict[str, tuple[str, int]] = {}
        for index, body in mappings.items():
            props = body.get("mappings", {}).get("properties", {}) if isinstance(body, dict) else {}
            mapping = _field_mapping(props, field)
            if mapping is None:
                continue
            if mapping.get("type") != "knn_vector":
                raise _bad(
                    f"Field '{field}' is not knn_vector type (it is [{mapping.get('type')}] in index [{index}])",
                    "illegal_argument_exception",
                )
            if str(mapping.get("data_type", "float")) != "float":
                raise _bad(
                    f"data_type [{mapping.get('data_type')}] is not supported by the k-NN emulation",
                    "illegal_argument_exception",
                )
            out[index] = (_space_type(mapping), int(mapping.get("dimension", 0)))
        if not out:
            raise _bad(f"Field '{field}' is not a knn_vector field in [{target}]", "illegal_argument_exception")
        return out

    def _candidates(self, target: str, flt: Json | None) -> Iterator[_Candidate]:
        query: Json = {"bool": {"filter": [flt]}} if flt else {"match_all": {}}
        search_after: list[Any] | None = None
        path = f"/{_quote_target(target)}/_search"
        while True:
            body: Json = {"size": self.page_size, "query": query, "sort": [{"_id": "asc"}], "track_total_hits": False}
            if search_after is not None:
                body["search_after"] = search_after
            hits = self.upstream.json("POST", path, body).get("hits", {}).get("hits", [])
            for hit in hits:
                yield _Candidate(str(hit["_index"]), str(hit["_id"]), dict(hit.get("_source") or {}))
            if len(hits) < self.page_size:
                return
            search_after = hits[-1].get("sort")
            if not search_after:
                return

    def _post_filter(self, target: str, scored: list[_Candidate], search: KnnSearch) -> list[_Candidate]:
        if not scored:
            return scored
        ids = sorted({c.doc_id for c in scored})
        body = {
            "size": len(scored),
            "_source": False,
            "query": {
                "bool": {
                    "filter": [{"ids": {"values": ids}}, *search.post_filters],
                    "must_not": list(search.post_must_not),
                }
            },
        }
        hits = self.upstream.json("POST", f"/{_quote_target(target)}/_search", body).get("hits", {}).get("hits", [])
        survivors = {(str(h["_index"]), str(h["_id"])) for h in hits}
        return [c for c in scored if (c.index, c.doc_id) in survivors]


# --------------------------------------------------------------------------------------------
# The HTTP proxy


def _search_target(path: str) -> str | None:
    """``/idx/_search`` -> ``idx``; ``/_search`` -> ``_all``; anything else -> None."""
    parts = [p for p in path.split("/") if p]
    if parts == ["_search"]:
        return "_all"
    if len(parts) == 2 and parts[1] == "_search" and not parts[0].startswith("_"):
        return urllib.parse.unquote(parts[0])
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._read_body()
        split = urllib.parse.urlsplit(self.path)
        target = _search_target(split.path)
        if target is not None and self.command in ("GET", "POST"):
            try:
                search = self._knn_search(body, split.query)
                if search is not None:
                    self.server.knn_requests += 1
                    result = KnnSearchEngine(self.server.upstream, self.server.page_size).run(target, search)
                    if "rest_total_hits_as_int" in urllib.parse.parse_qs(split.query):
                        result["hits"]["total"] = result["hits"]["total"]["value"]
                    self._reply(200, json.dumps(result).encode(), "application/json; charset=UTF-8")
                    return
            except KnnEmulationError as err:
                self._reply(err.status, json.dumps(err.body()).encode(), "application/json; charset=UTF-8")
                return
            except UpstreamError as err:
                self._reply(err.status, err.raw, err.content_type)
                return
        self._forward(body)

    def _knn_search(self, body: bytes, query_string: str) -> KnnSearch | None:
        if not body:
            return None
        raw = body
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(body)
        try:
            parsed = json.loads(raw)
        except ValueError:
            return None
        return find_knn_search(parsed, urllib.parse.parse_qs(query_string, keep_blank_values=True))

    def _forward(self, body: bytes) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
        headers["Host"] = f"{self.server.upstream.host}:{self.server.upstream.port}"
        if body or self.command in ("POST", "PUT"):
            headers["Content-Length"] = str(len(body))
        try:
            status, resp_headers, raw = self.server.upstream.raw(self.command, self.path, body or None, headers)
        except OSError as err:
            self._reply(
                502,
                json.dumps({"error": f"k-NN emulation proxy: upstream unreachable: {err}"}).encode(),
                "application/json",
            )
            return
        self.send_response(status)
        for key, value in resp_headers:
            if key.lower() not in HOP_BY_HOP and key.lower() not in ("content-length", "date", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def _reply(self, status: int, raw: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle  # noqa: N815


class _ProxyHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: Upstream, page_size: int, port: int, stats: dict[str, int]) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.upstream = upstream
        self.page_size = page_size
        self.stats = stats
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    @property
    def knn_requests(self) -> int:
        return self.stats["knn_requests"]

    @knn_requests.setter
    def knn_requests(self, value: int) -> None:
        self.stats["knn_requests"] = value

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut every open client connection (keep-alive ones too), as a crashed server would."""
        with self._open_lock:
            open_sockets, self._open = list(self._open), set()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class KnnEmulationProxy:
    """The proxy: ``KnnEmulationProxy(osmem_url).start()``, then talk to ``.url``; ``close()`` when done.

    ``stop()`` takes it down (connections refused, open ones cut) and ``start()`` brings it back on the
    same port, with the same osmem data behind it: fault tests use the pair for "OpenSearch is down".
    """

    def __init__(self, upstream_url: str, *, page_size: int = PAGE_SIZE) -> None:
        self.upstream_url = upstream_url.rstrip("/")
        self.page_size = page_size
        self._port = 0
        self._stats = {"knn_requests": 0}
        self._server: _ProxyHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``; stays the same across ``stop()``/``start()``."""
        if not self._port:
            raise RuntimeError("the k-NN emulation proxy was never started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def knn_requests(self) -> int:
        """How many knn searches the proxy answered itself (the rest went to osmem)."""
        return self._stats["knn_requests"]

    def start(self) -> KnnEmulationProxy:
        if self._server is None:
            self._server = _ProxyHTTPServer(Upstream(self.upstream_url), self.page_size, self._port, self._stats)
            self._port = int(self._server.server_address[1])
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                daemon=True,
                name="knn-emulation-proxy",
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections; the port stays this proxy's for ``start()``."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    close = stop

    def __enter__(self) -> KnnEmulationProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
