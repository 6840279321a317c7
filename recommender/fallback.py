"""The popularity fallback: what a request gets when it cannot be served personalized.

- The index is down -> the serving bundle's popular movies under the query's filters (an index the
  bundle builds on first need, ``ServingModel.fallback``, kept per model), flagged ``fallback:
  "popular"``; a title search gets the bundle's catalog instead (``fallback: "bundle"``).
- No user tower of the index's model -> the live index's popular movies (no vectors involved),
  flagged ``fallback: "popular"``.

Without the fallback (``RECS_INDEX_FALLBACK=none``) the error is raised again (503). Never cached.
"""

from __future__ import annotations

import logging
import threading

from core.errors import BundleError
from recommender.answers import RecommendationQuery, Recommendations
from recommender.errors import IndexUnavailableError, ModelMismatchError
from recommender.live_model import LiveModel, ServingModel
from recommender.ports import Telemetry, VectorIndex

log = logging.getLogger(__name__)


class PopularityFallback:
    """Fallback answers for the service on ``index`` and ``models``; ``enabled`` says whether to give them."""

    def __init__(self, enabled: bool, index: VectorIndex, models: LiveModel, telemetry: Telemetry) -> None:
        self.enabled = enabled
        self.index = index
        self.models = models
        self.telemetry = telemetry
        self._indexes: dict[str, VectorIndex] = {}
        self._lock = threading.Lock()

    def index_of(self, model: ServingModel | None) -> VectorIndex | None:
        """The bundle's own index of ``model`` (built once), or ``None`` without a fallback."""
        if not self.enabled or model is None or model.fallback is None:
            return None
        with self._lock:
            index = self._indexes.get(model.version)
            if index is None:
                try:
                    index = model.fallback()
                except (BundleError, OSError, ValueError) as exc:  # e.g. the catalog fails its check
                    log.error("the popularity fallback cannot be built (tried again next time): %s", exc)
                    return None
                self._indexes[model.version] = index
            return index

    def index_down(
        self, query: RecommendationQuery, exc: IndexUnavailableError, model: ServingModel | None
    ) -> Recommendations:
        """The bundle's popular movies under the query's filters, flagged; re-raises without a fallback."""
        fallback = self.index_of(model)
        if fallback is None or model is None:
            raise exc
        log.warning("vector index unavailable, serving the popularity fallback: %s", exc)
        self.telemetry.count("Fallbacks")
        seen = {h.movie_id for h in query.history} if query.exclude_seen else set()
        return Recommendations(
            model_version=model.version,
            items=fallback.popular(query.k, query.filters, seen),
            strategy="popular",
            ignored_movie_ids=[],
            history_used=0,
            fallback="popular",
        )

    def model_mismatch(self, query: RecommendationQuery, exc: ModelMismatchError) -> Recommendations:
        """No tower of the index's model: popular movies of the live catalog (no vectors involved),
        flagged, or ``ModelMismatchError`` (503) without the popularity fallback."""
        log.error("not serving the user tower against another model's vectors: %s", exc)
        self.telemetry.count("ModelMismatches")
        if not self.enabled:
            raise exc
        seen = {h.movie_id for h in query.history} if query.exclude_seen else set()
        try:
            items = self.index.popular(query.k, query.filters, seen)
        except IndexUnavailableError as down:
            return self.index_down(query, down, self.models.current())
        return Recommendations(
            model_version=exc.index or exc.serving or "unknown",
            items=items,
            strategy="popular",
            ignored_movie_ids=[],
            history_used=0,
            fallback="popular",
        )
