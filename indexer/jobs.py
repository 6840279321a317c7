"""The indexer's jobs: full rebuild, incremental update, rollback, status, and the S3-event dispatch.

Each job takes the run lock, changes the target, bumps the catalog generation and reports a
summary. ``on_step`` is called with the name of each step as it completes (``locked``,
``created``, ``loaded``, ``verified``, ``swapped``, ``applied``, ``bumped``): logs use it, and so
do the fault tests that stop a run between two steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import cached_property
from typing import Any

from core.errors import BundleError
from indexer.adapters.clients import opensearch_client, redis_client
from indexer.adapters.embedded import EmbeddedTarget
from indexer.adapters.opensearch import OpenSearchTarget
from indexer.catalog_stream import BundleCatalog, CatalogBatch
from indexer.delta import CatalogDelta
from indexer.errors import IndexerError, NoLiveIndexError, RollbackError, SourceError
from indexer.generation import bump_generation, read_generation
from indexer.locks import FileLock, OpenSearchLock, RedisLock, RunLock
from indexer.reporting import Reporter, RunSummary
from indexer.retry import Backoff
from indexer.settings import IndexerSettings
from indexer.sources import load_bundle, load_delta, plan_for_object
from indexer.target import IndexTarget, Probe, probe_positions, probe_vector

StepHook = Callable[[str], None]


class Indexer:
    """Runs jobs against the target the settings name (OpenSearch if a URL is set, else the embedded store)."""

    def __init__(
        self,
        settings: IndexerSettings,
        reporter: Reporter | None = None,
        *,
        on_step: StepHook | None = None,
        opensearch: Any = None,
        redis: Any = None,
    ) -> None:
        self.settings = settings
        self.reporter = reporter or Reporter()
        self.on_step = on_step
        self._opensearch = opensearch
        self._redis = redis
        self.backoff = Backoff(first=settings.backoff_seconds, max_retries=settings.max_retries)

    # -- wiring (lazy: nothing is built until a job needs it) ---------------------
    @cached_property
    def opensearch(self) -> Any:
        return self._opensearch if self._opensearch is not None else opensearch_client(self.settings)

    @cached_property
    def redis(self) -> Any:
        return self._redis if self._redis is not None else redis_client(self.settings)

    @cached_property
    def target(self) -> IndexTarget:
        s = self.settings
        if s.uses_opensearch:
            return OpenSearchTarget(self.opensearch, alias=s.alias, params=s.index, backoff=self.backoff,
                                    chunk_docs=s.bulk_docs, chunk_bytes=s.bulk_bytes, url=s.opensearch_url or "",
                                    workers=s.bulk_workers)
        return EmbeddedTarget(s.embedded_store, alias=s.alias)

    def lock(self, job: str) -> RunLock:
        s = self.settings
        common: dict[str, Any] = {"ttl": s.lock_ttl, "wait": s.lock_wait, "job": job}
        if self.redis is not None:
            return RedisLock(self.redis, **common)
        if s.uses_opensearch:
            return OpenSearchLock(self.opensearch, s.alias, **common)
        return FileLock(s.embedded_store, **common)

    def _step(self, name: str, **fields: Any) -> None:
        self.reporter.log(name, **fields)
        if self.on_step is not None:
            self.on_step(name)

    def _bump(self, what: str) -> int | None:
        if self.redis is not None:
            return bump_generation(self.redis, self.backoff, what)
        return self.target.generation()

    # -- jobs ----------------------------------------------------------------------
    def rebuild(self, bundle_location: str | None = None) -> RunSummary:
        """Full rebuild from a bundle into a new index, verified, then swapped in atomically."""
        started = time.monotonic()
        location = bundle_location or self.settings.bundle_location
        bundle = load_bundle(location)
        try:
            catalog = BundleCatalog(bundle, batch_size=self.settings.bulk_docs)
            # the towers too (hashes and shapes): a model whose user tower the API cannot load, or whose
            # item tower a later delta cannot use, must not go live
            _ = bundle.user_tower, bundle.item_tower
        except BundleError as exc:
            raise SourceError(str(exc)) from exc
        space = self.settings.index.space_type or bundle.manifest.space_type
        target = self.target
        self.reporter.log("rebuild_started", bundle=location, model_version=bundle.model_version,
                          movies=catalog.count, dimension=catalog.dimension, target=target.describe())
        with self.lock("rebuild") as lock:
            self._step("locked")
            before = target.live()
            name = target.new_name(bundle.model_version)
            target.create(name, model_version=bundle.model_version, dimension=catalog.dimension, space_type=space)
            self._step("created", index=name)
            try:
                probes: list[Probe] = []
                wanted = set(probe_positions(catalog.count, self.settings.probes))
                progress = self.reporter.progress(f"indexing {name}", catalog.count)

                def batches() -> Iterator[CatalogBatch]:
                    for batch in catalog.batches():
                        for row in range(len(batch.movies)):
                            if batch.start + row in wanted:
                                probes.append(Probe(batch.movies[row].movie_id,
                                                    probe_vector(batch.vectors[row], space)))
                        yield batch

                def on_docs(n: int) -> None:
                    progress.update(n)
                    lock.heartbeat()

                try:
                    loaded = target.load(name, batches(), on_docs)
                finally:
                    progress.close()
                target.finish(name)
                documents = loaded.documents
                self._step("loaded", index=name, documents=documents, retried=loaded.retried)
                target.verify(name, catalog.count, probes)
                self._step("verified", index=name, probes=len(probes))
                lock.heartbeat(force=True)
            except BundleError as exc:
                self._discard(name)
                raise SourceError(str(exc)) from exc
            except Exception:
                self._discard(name)
                raise
            swap = target.swap(name, self.settings.keep)
            self._step("swapped", alias=target.alias, before=swap.before, after=swap.after, deleted=swap.deleted)
            generation = self._bump(f"alias {target.alias} now points at {name}")
            self._step("bumped", generation=generation)
        summary = RunSummary(
            job="rebuild", target=target.describe(), alias=target.alias, alias_before=swap.before,
            alias_after=swap.after, model_version=bundle.model_version, index=name, documents=documents,
            seconds=time.monotonic() - started, generation=generation, deleted_indices=swap.deleted,
            details={"bundle": location, "probes": len(probes), "bulk_retries": loaded.retried,
                     "previous_kept": self.settings.keep,
                     "live_before": before.name if before else None},
        )
        self.reporter.summary(summary)
        return summary

    def _discard(self, name: str) -> None:
        try:
            self.target.discard(name)
            self.reporter.log("discarded", level="warning", index=name)
        except Exception as exc:  # the next rebuild deletes it anyway
            self.reporter.log("discard_failed", level="warning", index=name, error=str(exc))

    def update(
        self,
        delta: CatalogDelta | str,
        bundle_location: str | Callable[[str], str] | None = None,
    ) -> RunSummary:
        """Upsert and delete movies in the live index; new movies are embedded with the bundle's item tower.

        ``bundle_location`` may be a function of the live index's model version (the Fargate task
        finds the bundle under ``bundles/<model_version>``).
        """
        started = time.monotonic()
        parsed = delta if isinstance(delta, CatalogDelta) else load_delta(delta)  # rejected before any write
        target = self.target
        self.reporter.log("update_started", delta=parsed.source, upserts=len(parsed.upserts),
                          deletes=len(parsed.deletes), target=target.describe())
        with self.lock("update") as lock:
            self._step("locked")
            live = target.live()
            if live is None:
                raise NoLiveIndexError(f"{target.describe()}: no live index to update; run a full rebuild first "
                                       "(`recs index rebuild`)")
            if callable(bundle_location):
                location = bundle_location(live.model_version or "")
            else:
                location = bundle_location or self.settings.bundle_location
            bundle = load_bundle(location)
            if live.model_version is not None and bundle.model_version != live.model_version:
                raise IndexerError(
                    f"the live index {live.name} holds vectors of model {live.model_version}, but the bundle at "
                    f"{location} is model {bundle.model_version}: use that model's bundle (or run a full rebuild)"
                )
            existing = target.fetch([u.movie.movie_id for u in parsed.upserts])
            movies = []
            for item in parsed.upserts:
                old = existing.get(item.movie.movie_id)
                keep_popularity = not item.popularity_given and old is not None
                movies.append(replace(item.movie, popularity=old.popularity) if keep_popularity and old else item.movie)
            try:
                vectors = bundle.item_tower.encode(movies)
            except BundleError as exc:
                raise SourceError(str(exc)) from exc
            lock.heartbeat(force=True)
            result = target.apply(live, movies, vectors, parsed.deletes)
            self._step("applied", index=result.after, upserted=result.upserted, deleted=result.deleted,
                       not_found=result.not_found)
            generation = self._bump(f"the delta {parsed.source} was applied to {result.after}")
            self._step("bumped", generation=generation)
        summary = RunSummary(
            job="update", target=target.describe(), alias=target.alias, alias_before=result.before,
            alias_after=result.after, model_version=bundle.model_version, index=result.after,
            documents=parsed.size, seconds=time.monotonic() - started, generation=generation,
            details={"delta": parsed.source, "bundle": location,
                     "new": sum(1 for m in movies if m.movie_id not in existing),
                     "changed": sum(1 for m in movies if m.movie_id in existing),
                     "deleted": result.deleted, "delete_not_found": result.not_found},
        )
        self.reporter.summary(summary)
        return summary

    def rollback(self, to: str | None = None) -> RunSummary:
        """Point the alias back at the previous index that was live (or ``to``)."""
        started = time.monotonic()
        target = self.target
        with self.lock("rollback"):
            self._step("locked")
            if target.live() is None:
                raise NoLiveIndexError(f"{target.describe()}: no live index, nothing to roll back")
            candidates = target.rollback_candidates()
            if not candidates:
                raise RollbackError(f"{target.describe()}: no earlier index is kept to roll back to "
                                    f"(RECS_INDEX_KEEP={self.settings.keep})")
            chosen = to or candidates[0].name
            swap = target.rollback(chosen)
            self._step("swapped", alias=target.alias, before=swap.before, after=swap.after)
            generation = self._bump(f"alias {target.alias} was rolled back to {chosen}")
            self._step("bumped", generation=generation)
        info = next((c for c in candidates if c.name == chosen), None)
        summary = RunSummary(
            job="rollback", target=target.describe(), alias=target.alias, alias_before=swap.before,
            alias_after=swap.after, model_version=info.model_version if info else None, index=chosen,
            seconds=time.monotonic() - started, generation=generation,
        )
        self.reporter.summary(summary)
        return summary

    def status(self) -> dict[str, Any]:
        """The alias, the indices this indexer owns, rollback candidates and the generation."""
        target = self.target
        live = target.live()
        generation = read_generation(self.redis) if self.redis is not None else target.generation()
        return {
            "target": target.describe(),
            "alias": target.alias,
            "live": live.name if live else None,
            "model_version": live.model_version if live else None,
            "generation": generation,
            "indices": [{"name": i.name, "model_version": i.model_version, "served": i.served,
                         "live": bool(live and i.name == live.name)} for i in target.indices()],
            "rollback_candidates": [i.name for i in target.rollback_candidates()],
        }

    def auto(self, bucket: str | None = None, key: str | None = None, bundle: str | None = None) -> RunSummary:
        """The Fargate entry point: a new bundle manifest -> rebuild; a delta file -> update."""
        plan = plan_for_object(bucket or self.settings.s3_bucket, key or self.settings.s3_key)
        self.reporter.log("plan", job=plan.job, location=plan.location)
        if plan.job == "rebuild":
            return self.rebuild(plan.location)
        if bundle:  # an explicit argument; RECS_BUNDLE is not used: the live model's bundle is the right one
            return self.update(plan.location, bundle)
        return self.update(plan.location, lambda version: f"{plan.bundles_root}/{version}")
