"""Which user tower serves a request: only ever the one of the model whose vectors the live index holds.

After a retrain the indexer swaps the alias to the new model's movie vectors; a user vector of the
old tower compared with them gives silently wrong answers (the dimensions may even match). Two modes,
chosen by ``RECS_BUNDLE`` (``ServiceSettings.bundle_is_root``):

- **One fixed bundle** (``s3://bucket/bundles/v3``, ``artifacts/bundle``): its tower serves while the
  index serves the same model (or records no model at all). When the index serves another model,
  ``resolve()`` raises ``ModelMismatchError`` naming both; the service answers 503 ``model_mismatch``
  or the popularity fallback, and ``/health`` says so.
- **A bundle root** (a value ending in ``/``: ``s3://bucket/bundles/``, ``artifacts/bundles/``): the
  bundle served is ``<root><model version of the live index>/``. When the index moves to another
  model, the next request loads that bundle's user tower and switches to it in one reference
  assignment (warm Lambdas follow without a redeploy); requests in flight finish with the model they
  started with, because their searches name it and the index checks it. A bundle that cannot be
  loaded (not uploaded, corrupt) is retried after ``retry_after_seconds``; until then requests get the
  mismatch answer, never the old tower against the new vectors.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from core.bundle import Bundle
from core.errors import BundleError
from core.towers import UserEncoder
from recommender.errors import ModelMismatchError
from recommender.ports import VectorIndex

log = logging.getLogger(__name__)

RETRY_LOAD_AFTER_SECONDS = 10.0
MODELS_KEPT = 2
"""Loaded models kept in memory (the serving one and the previous: a rollback needs no download)."""


@dataclass(frozen=True)
class ServingModel:
    """A user tower with its model version; ``fallback`` builds the bundle's popularity index (lazily)."""

    version: str
    tower: UserEncoder
    bundle: Bundle | None = None
    fallback: Callable[[], VectorIndex] | None = None


class LiveModel:
    """Resolves the serving model against the live index's model version; thread-safe."""

    def __init__(
        self,
        index: VectorIndex,
        *,
        fixed: ServingModel | None = None,
        loader: Callable[[str], ServingModel] | None = None,
        retry_after_seconds: float = RETRY_LOAD_AFTER_SECONDS,
    ) -> None:
        if (fixed is None) == (loader is None):
            raise ValueError("give either a fixed model or a loader (bundle root)")
        self._index = index
        self._loader = loader
        self._current: ServingModel | None = fixed
        self._loaded: OrderedDict[str, ServingModel] = OrderedDict()
        self._failures: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._retry_after = retry_after_seconds

    @property
    def follows_index(self) -> bool:
        """True for a bundle root: the model follows the index."""
        return self._loader is not None

    def current(self) -> ServingModel | None:
        """The model serving now (``None`` with a bundle root before the first resolve); no I/O."""
        return self._current

    def forget_failures(self) -> None:
        """Retry every bundle that failed to load at once (a SnapStart restore: the failures were timed on the
        clock of the snapshot)."""
        with self._lock:
            self._failures.clear()

    def resolve(self) -> ServingModel:
        """The model to serve the live index with. Raises ``IndexUnavailableError`` (the index cannot
        say its model) and ``ModelMismatchError`` (no tower of the index's model can serve)."""
        live = self._index.model_version()
        current = self._current
        if self._loader is None:
            assert current is not None
            if live is None or live == current.version:
                return current
            raise ModelMismatchError(
                current.version, live,
                "RECS_BUNDLE names one fixed bundle; deploy the index's model, or give RECS_BUNDLE the bundle "
                "root (ending in '/') to follow the index",
            )
        if live is None:
            raise ModelMismatchError(
                current.version if current else None, None,
                "the index records no model version (_meta.model_version), so no bundle can be chosen from the root",
            )
        if current is not None and current.version == live:
            return current
        return self._switch(live)

    def _switch(self, version: str) -> ServingModel:
        assert self._loader is not None
        with self._lock:
            current = self._current
            if current is not None and current.version == version:
                return current
            model = self._loaded.get(version)
            if model is None:
                failed = self._failures.get(version)
                if failed is not None and time.monotonic() - failed[0] < self._retry_after:
                    raise ModelMismatchError(current.version if current else None, version, failed[1])
                try:
                    model = self._loader(version)
                except (BundleError, OSError, ValueError) as exc:
                    reason = f"the bundle of model {version!r} cannot be loaded: {exc}"
                    self._failures[version] = (time.monotonic(), reason)
                    log.error(reason)
                    raise ModelMismatchError(current.version if current else None, version, reason) from exc
                self._failures.pop(version, None)
                self._loaded[version] = model
                while len(self._loaded) > MODELS_KEPT:
                    self._loaded.popitem(last=False)
            else:
                self._loaded.move_to_end(version)
            self._current = model
            previous = current.version if current else None
            log.warning("serving model %s (was %s): the live index moved", version, previous)
            return model
