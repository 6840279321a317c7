"""The kernel's run lock as the retraining job holds it: its own names, the kernel's errors, and a keep-alive
thread for work that has no loop to heartbeat from. (The indexer's binding is tested in tests/indexer.)"""

from __future__ import annotations

import time

import pytest

from core.errors import LockHeldError, LockLostError
from core.locks import INDEXER, RETRAIN, FileLock, RedisLock
from indexer.locks import FileLock as IndexerFileLock


def test_the_retrain_lock_has_its_own_names_and_says_which_setting_waits(tmp_path):
    with FileLock(tmp_path, ttl=30, job="retrain", spec=RETRAIN) as first:
        assert first.path == tmp_path / "retrain.lock"
        # the indexer's lock in the same directory is another lock
        with IndexerFileLock(tmp_path, ttl=30, job="rebuild"):
            pass
        with pytest.raises(LockHeldError) as caught:
            FileLock(tmp_path, ttl=30, job="other", spec=RETRAIN).acquire()
    message = str(caught.value)
    assert "another retrain holds" in message and "RECS_RETRAIN_LOCK_WAIT_SECONDS" in message
    assert caught.value.exit_code == 75
    assert INDEXER.redis_key != RETRAIN.redis_key and INDEXER.opensearch_index != RETRAIN.opensearch_index


def test_keep_alive_extends_a_redis_lock_while_the_work_runs(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    lock = RedisLock(client, ttl=0.6, job="retrain", spec=RETRAIN)
    with lock, lock.keep_alive(interval=0.15):
        time.sleep(1.5)  # over twice the TTL: only the keep-alive thread keeps it
        assert lock.holder() is not None and lock.holder()[0] == lock.owner
        lock.heartbeat(force=True)
        assert client.get(RETRAIN.redis_key) is not None
    assert client.get(RETRAIN.redis_key) is None


def test_a_lock_lost_while_kept_alive_is_raised_by_the_next_heartbeat(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    lock = RedisLock(client, ttl=30, job="retrain", spec=RETRAIN)
    with lock, lock.keep_alive(interval=0.05):
        client.set(RETRAIN.redis_key, "thief:1:other:token")  # another run took it over
        time.sleep(0.3)
        with pytest.raises(LockLostError, match="RECS_RETRAIN_LOCK_TTL_SECONDS"):
            lock.heartbeat(force=True)
    assert client.get(RETRAIN.redis_key) == b"thief:1:other:token"  # releasing did not drop the thief's lock
