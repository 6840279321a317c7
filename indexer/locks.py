"""The indexer's run lock: ``core.locks`` with the indexer's names (``recs:indexer:lock``, the index
``recs-indexer-lock``, ``<store>/indexer.lock``), its errors (``LockHeldError`` exits 75) and settings.

The implementation is the kernel's, shared with the retraining job (``training.retrain``), which holds
its own lock (``core.locks.RETRAIN``) with the same three backends.
"""

from __future__ import annotations

from typing import ClassVar

from core import locks
from core.locks import LockSpec, RunLock, owner_label
from indexer.errors import IndexerError, LockHeldError, LockLostError

INDEXER_LOCK = LockSpec(
    redis_key=locks.INDEXER.redis_key,
    opensearch_index=locks.INDEXER.opensearch_index,
    file_name=locks.INDEXER.file_name,
    holder=locks.INDEXER.holder,
    wait_setting=locks.INDEXER.wait_setting,
    ttl_setting=locks.INDEXER.ttl_setting,
    held_error=LockHeldError,
    lost_error=LockLostError,
    error=IndexerError,
)
REDIS_LOCK_KEY = INDEXER_LOCK.redis_key
OPENSEARCH_LOCK_INDEX = INDEXER_LOCK.opensearch_index
LOCK_FILE = INDEXER_LOCK.file_name

__all__ = ["INDEXER_LOCK", "FileLock", "OpenSearchLock", "RedisLock", "RunLock", "owner_label"]


class RedisLock(locks.RedisLock):
    default_spec: ClassVar[LockSpec] = INDEXER_LOCK


class OpenSearchLock(locks.OpenSearchLock):
    default_spec: ClassVar[LockSpec] = INDEXER_LOCK


class FileLock(locks.FileLock):
    default_spec: ClassVar[LockSpec] = INDEXER_LOCK
