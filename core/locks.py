"""One run at a time: a lock with a TTL, in Redis, in OpenSearch or in a directory.

The indexer's jobs and the retraining job each hold one (``INDEXER`` and ``RETRAIN`` below: the same
code, their own keys, errors and setting names). Every lock holds a random token naming its owner
(host, pid, job); only the holder can extend or release it, and a lock whose holder crashed expires
after ``ttl`` seconds. A long run extends its lock from its main loop (``heartbeat``) or from a
background thread (``keep_alive``), and checks it once more just before it makes anything live: a
run that lost its lock stops there (``LockLostError``).

- Redis (when ``RECS_REDIS_URL`` is set): key ``recs:<name>:lock``, redis-py's ``Lock`` (``SET NX PX``
  with this run's token; extend and release compare the token in Lua).
- OpenSearch (no Redis): a document ``<alias>`` in the index ``recs-<name>-lock``, created with
  ``op_type=create``; takeover of an expired lock, extend and release are conditional on
  ``if_seq_no``/``if_primary_term``.
- A directory (the embedded store): ``<dir>/<name>.lock`` (JSON), changed only under an ``flock`` on a
  guard file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from core.errors import LockError, LockHeldError, LockLostError

T = TypeVar("T")


@dataclass(frozen=True)
class LockSpec:
    """Which lock: its names in each backend, what holds it, the settings named in its messages, and the
    errors it raises (an app passes its own subclasses of the kernel's, so its callers catch them as theirs)."""

    redis_key: str
    opensearch_index: str
    file_name: str
    holder: str
    """Who holds it, for messages: ``indexer run``, ``retrain``."""
    wait_setting: str
    ttl_setting: str
    held_error: type[LockHeldError] = LockHeldError
    lost_error: type[LockLostError] = LockLostError
    error: type[Exception] = LockError
    """Raised when the backend fails (Redis or OpenSearch down, an unreadable file)."""


INDEXER = LockSpec(
    redis_key="recs:indexer:lock", opensearch_index="recs-indexer-lock", file_name="indexer.lock",
    holder="indexer run", wait_setting="RECS_INDEX_LOCK_WAIT_SECONDS", ttl_setting="RECS_INDEX_LOCK_TTL_SECONDS",
)
RETRAIN = LockSpec(
    redis_key="recs:retrain:lock", opensearch_index="recs-retrain-lock", file_name="retrain.lock",
    holder="retrain", wait_setting="RECS_RETRAIN_LOCK_WAIT_SECONDS", ttl_setting="RECS_RETRAIN_LOCK_TTL_SECONDS",
)
REDIS_LOCK_KEY = INDEXER.redis_key
OPENSEARCH_LOCK_INDEX = INDEXER.opensearch_index
LOCK_FILE = INDEXER.file_name


def owner_label(job: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{job}"


class RunLock(ABC):
    """Acquire with ``with lock:`` (or ``acquire``/``release``); see the module docstring.

    ``spec`` (a class attribute, or the keyword) says which lock it is; the default is the indexer's.
    """

    where: str = "lock"
    default_spec: ClassVar[LockSpec] = INDEXER

    def __init__(
        self, *, ttl: float, wait: float = 0.0, job: str = "run", spec: LockSpec | None = None,
        clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.spec = spec or self.default_spec
        self.ttl = ttl
        self.wait = wait
        self.owner = owner_label(job)
        self.token = f"{self.owner}:{uuid.uuid4().hex}"
        self.clock = clock
        self.sleep = sleep
        self.held = False
        self._last_extend = 0.0
        self._lost = False
        self._keeper: threading.Thread | None = None
        self._stop_keeping = threading.Event()
        self._extending = threading.Lock()  # the keep-alive thread and the main thread never extend at once

    # -- backend ---------------------------------------------------------------
    @abstractmethod
    def _try_acquire(self) -> bool:
        """Take the lock if it is free or expired."""

    @abstractmethod
    def _extend(self) -> bool:
        """Push the expiry ``ttl`` seconds ahead if this run still holds the lock."""

    @abstractmethod
    def _release(self) -> None:
        """Drop the lock if this run still holds it."""

    @abstractmethod
    def holder(self) -> tuple[str, float] | None:
        """``(owner, seconds left)`` of the current holder, or None when free."""

    # -- protocol --------------------------------------------------------------
    def _backend(self, what: str, fn: Callable[[], T]) -> T:
        """Run a backend call; its failure (Redis or OpenSearch down, a file error) is ``spec.error``."""
        try:
            return fn()
        except self.spec.error:
            raise
        except Exception as exc:
            raise self.spec.error(f"cannot {what} {self.where}: {type(exc).__name__}: {exc}") from exc

    def acquire(self) -> None:
        deadline = self.clock() + self.wait
        while True:
            if self._backend("take", self._try_acquire):
                self.held = True
                self._last_extend = self.clock()
                return
            now = self.clock()
            if now >= deadline:
                current = self._backend("read", self.holder)
                who = f"{current[0]} (expires in {current[1]:.0f} s)" if current else "another run"
                waited = f" after waiting {self.wait:.0f} s" if self.wait else ""
                raise self.spec.held_error(
                    f"another {self.spec.holder} holds {self.where}: {who}; exiting{waited}. "
                    f"Run again later, or set {self.spec.wait_setting} to wait for it."
                )
            self.sleep(min(0.25, max(0.05, deadline - now)))

    def heartbeat(self, force: bool = False) -> None:
        """Extend the lock if a third of its TTL has passed (or ``force``); raise if it was lost."""
        if self._lost:
            self.held = False
            raise self._lost_error()
        if not self.held:
            return
        now = self.clock()
        if not force and now - self._last_extend < self.ttl / 3:
            return
        with self._extending:
            extended = self._backend("extend", self._extend)
        if not extended:
            self.held = False
            self._lost = True
            raise self._lost_error()
        self._last_extend = now

    def _lost_error(self) -> LockLostError:
        return self.spec.lost_error(
            f"{self.where} expired and was taken by another run; stopping before anything is made live "
            f"(raise {self.spec.ttl_setting} if runs stall longer than the TTL)"
        )

    @contextlib.contextmanager
    def keep_alive(self, interval: float | None = None) -> Iterator[RunLock]:
        """Extend the lock from a background thread every ``interval`` seconds (a third of the TTL) while the
        block runs, for work with no loop of its own to call ``heartbeat`` from (a model's training). A lost
        lock is noticed by the thread and raised by the next ``heartbeat`` of the main thread; a backend
        that fails is retried at the next beat (the TTL covers two of them)."""
        every = self.ttl / 3 if interval is None else interval
        self._stop_keeping.clear()

        def beat() -> None:
            while not self._stop_keeping.wait(every):
                if not self.held or self._lost:
                    return
                try:
                    with self._extending:
                        extended = self._extend()
                    if not extended:
                        self._lost = True
                        return
                    self._last_extend = self.clock()
                except Exception:  # the backend is down for a moment: try again at the next beat
                    continue

        self._keeper = threading.Thread(target=beat, name=f"{self.spec.file_name}-keep-alive", daemon=True)
        self._keeper.start()
        try:
            yield self
        finally:
            self._stop_keeping.set()
            self._keeper.join()
            self._keeper = None

    def release(self) -> None:
        """Drop the lock; if that fails (the backend is down) it simply expires after its TTL."""
        self._stop_keeping.set()
        if self.held:
            self.held = False
            with contextlib.suppress(Exception):
                self._release()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class RedisLock(RunLock):
    """redis-py's own ``Lock`` (``SET NX PX`` with this run's token; extend and release check the token
    in Lua), with the owner label in the token so ``holder`` can say who holds it."""

    def __init__(self, client: Any, key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.key = key or self.spec.redis_key
        self.where = f"the Redis key {self.key}"
        # thread_local=False: the token must be the same whichever thread heartbeats or releases
        self._lock = client.lock(self.key, timeout=self.ttl, blocking=False, thread_local=False)

    def _try_acquire(self) -> bool:
        return bool(self._lock.acquire(blocking=False, token=self.token))

    def _extend(self) -> bool:
        from redis.exceptions import LockError

        try:
            return bool(self._lock.extend(self.ttl, replace_ttl=True))
        except LockError:  # LockNotOwnedError: it expired and another run took it
            return False

    def _release(self) -> None:
        from redis.exceptions import LockError

        with contextlib.suppress(LockError):  # expired meanwhile: nothing of ours to drop
            self._lock.release()

    def holder(self) -> tuple[str, float] | None:
        value = self.client.get(self.key)
        if value is None:
            return None
        owner = value.decode() if isinstance(value, bytes) else str(value)
        ttl_ms = self.client.pttl(self.key)
        return owner.rsplit(":", 1)[0], max(0.0, ttl_ms / 1000.0)


class OpenSearchLock(RunLock):
    def __init__(self, client: Any, name: str, index: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.index = index or self.spec.opensearch_index
        self.name = name
        self.where = f"the OpenSearch document {index}/{name}"
        self._index_ready = False

    def _ensure_index(self) -> None:
        if self._index_ready:
            return
        from opensearchpy.exceptions import RequestError

        if not self.client.indices.exists(index=self.index):
            body = {
                "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
                "mappings": {"dynamic": False, "properties": {"owner": {"type": "keyword"},
                                                              "expires_at": {"type": "double"}}},
            }
            try:
                self.client.indices.create(index=self.index, body=body)
            except RequestError as exc:  # created meanwhile by another run
                if "already_exists" not in str(exc.error):
                    raise
        self._index_ready = True

    def _doc(self) -> dict[str, Any]:
        return {"token": self.token, "owner": self.owner, "expires_at": self.clock() + self.ttl}

    def _get(self) -> dict[str, Any] | None:
        from opensearchpy.exceptions import NotFoundError

        try:
            return dict(self.client.get(index=self.index, id=self.name))
        except NotFoundError:
            return None

    def _try_acquire(self) -> bool:
        from opensearchpy.exceptions import ConflictError, NotFoundError

        self._ensure_index()
        for _ in range(3):
            try:
                self.client.index(index=self.index, id=self.name, body=self._doc(), op_type="create")
                return True
            except ConflictError:
                pass
            current = self._get()
            if current is None:
                continue  # released meanwhile: try again
            if float(current["_source"].get("expires_at", 0)) > self.clock():
                return False
            # Expired: remove it, but only if nobody else changed it since we read it.
            with contextlib.suppress(ConflictError, NotFoundError):
                self.client.delete(index=self.index, id=self.name, if_seq_no=current["_seq_no"],
                                   if_primary_term=current["_primary_term"])
        return False

    def _extend(self) -> bool:
        from opensearchpy.exceptions import ConflictError

        current = self._get()
        if current is None or current["_source"].get("token") != self.token:
            return False
        try:
            self.client.index(index=self.index, id=self.name, body=self._doc(), if_seq_no=current["_seq_no"],
                              if_primary_term=current["_primary_term"])
        except ConflictError:
            return False
        return True

    def _release(self) -> None:
        from opensearchpy.exceptions import ConflictError, NotFoundError

        current = self._get()
        if current is None or current["_source"].get("token") != self.token:
            return
        with contextlib.suppress(ConflictError, NotFoundError):
            self.client.delete(index=self.index, id=self.name, if_seq_no=current["_seq_no"],
                               if_primary_term=current["_primary_term"])

    def holder(self) -> tuple[str, float] | None:
        current = self._get()
        if current is None:
            return None
        source = current["_source"]
        return str(source.get("owner", "?")), max(0.0, float(source.get("expires_at", 0)) - self.clock())


class FileLock(RunLock):
    """A lock in a directory (the embedded store's): ``<root>/<spec.file_name>``, read and written under an
    ``flock`` on a guard file beside it."""

    def __init__(self, root: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.path = self.root / self.spec.file_name
        self.where = str(self.path)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / f".{self.spec.file_name}.guard").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise self.spec.error(f"{self.path}: unreadable lock file ({exc}); remove it if no run is active") from exc
        return data if isinstance(data, dict) else None

    def _write(self) -> None:
        tmp = self.path.with_name(f".{self.spec.file_name}.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps(self._record()), encoding="utf-8")
        os.replace(tmp, self.path)

    def _record(self) -> dict[str, Any]:
        return {"token": self.token, "owner": self.owner, "expires_at": self.clock() + self.ttl}

    def _try_acquire(self) -> bool:
        with self._guard():
            current = self._read()
            if current is not None and float(current.get("expires_at", 0)) > self.clock():
                return False
            self._write()
            return True

    def _extend(self) -> bool:
        with self._guard():
            current = self._read()
            if current is None or current.get("token") != self.token:
                return False
            self._write()
            return True

    def _release(self) -> None:
        with self._guard():
            current = self._read()
            if current is not None and current.get("token") == self.token:
                self.path.unlink(missing_ok=True)

    def holder(self) -> tuple[str, float] | None:
        current = self._read()
        if current is None:
            return None
        return str(current.get("owner", "?")), max(0.0, float(current.get("expires_at", 0)) - self.clock())
