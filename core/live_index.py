"""Which model the live index serves: the one read both the retraining job and the tools need.

The indexer writes the model version into every index it builds (``_meta.model_version`` of the
OpenSearch index the alias points at; ``meta.json`` of the embedded store's published index), and the
API serves the bundle of that version. ``live_model_version`` reads it back, from the embedded store or
from OpenSearch (a client built by ``core.aws.opensearch_client``), without the indexer or the API:

- ``None``: nothing is live yet (no alias, no published index): the next model is the first one;
- a version string: the live model;
- ``LiveIndexError``: the index cannot say (OpenSearch unreachable or refusing, an alias over indices
  of different models, an index without ``_meta.model_version``). A caller that must compare against
  the live model stops there rather than guess.
"""

from __future__ import annotations

import os
from typing import Any

from core.embedded_store import EmbeddedStore
from core.errors import EmbeddedStoreError, LiveIndexError


def live_model_version(
    *,
    opensearch: Any = None,
    alias: str = "movies",
    embedded_store: str | os.PathLike[str] | None = None,
) -> str | None:
    """The model version of the live index: OpenSearch's alias when a client is given, else the embedded store."""
    if opensearch is not None:
        return _opensearch_version(opensearch, alias)
    if embedded_store is None:
        raise ValueError("give an OpenSearch client or an embedded store directory")
    return _embedded_version(embedded_store)


def describe_live_index(*, opensearch_url: str | None, alias: str, embedded_store: str | os.PathLike[str]) -> str:
    """Where the live index is read from, for messages and reports."""
    if opensearch_url:
        return f"OpenSearch alias {alias!r} at {opensearch_url.split('@')[-1]}"
    return f"embedded store {embedded_store}"


def _embedded_version(root: str | os.PathLike[str]) -> str | None:
    store = EmbeddedStore(root)
    try:
        alias = store.alias()
    except EmbeddedStoreError as exc:
        raise LiveIndexError(str(exc)) from exc
    if not alias or not alias.get("index"):
        return None
    name = str(alias["index"])
    meta = store.index_meta(name)
    if meta is None or not meta.get("model_version"):
        raise LiveIndexError(f"{root}: the live index {name} is missing or records no model version")
    return str(meta["model_version"])


def _opensearch_version(client: Any, alias: str) -> str | None:
    from opensearchpy.exceptions import NotFoundError, OpenSearchException

    try:
        try:
            names = sorted(client.indices.get_alias(name=alias))
        except NotFoundError:
            return None
        if not names:
            return None
        versions = {}
        for name in names:
            mapping = client.indices.get_mapping(index=name)
            meta = (mapping.get(name, {}).get("mappings") or {}).get("_meta") or {}
            versions[name] = meta.get("model_version")
    except OpenSearchException as exc:
        raise LiveIndexError(f"cannot read the alias {alias!r} from OpenSearch: {type(exc).__name__}: {exc}") from exc
    found = set(versions.values())
    if None in found:
        missing = ", ".join(n for n, v in versions.items() if v is None)
        raise LiveIndexError(f"the alias {alias!r} points at {missing}, which records no _meta.model_version")
    if len(found) > 1:
        shown = ", ".join(f"{n} ({v})" for n, v in versions.items())
        raise LiveIndexError(f"the alias {alias!r} spans indices of different models: {shown}")
    return str(found.pop())
