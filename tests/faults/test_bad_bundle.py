"""A corrupted or mismatched bundle: refused at start with a clear error, and the previous state kept.

"Corrupted": one byte of a file flipped (its sha256 no longer matches the manifest). "Mismatched":
files of two models put together, the manifest's hashes updated so that only the shape checks
can catch it (a catalog of another size; a dimension the arrays do not have). Each is offered to
``recs serve`` (when it reads that file) and to ``recs index rebuild`` while a good deployment
(embedded store, ``recs serve`` as its own process) is answering: both refuse it, naming the file,
and the live state does not move. A delta with another model's bundle is refused the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.load import HttpClient, ServerProcess, child_env
from core.bundle import Bundle
from recs.local.synthetic import write_synthetic_bundle
from tests.faults.conftest import ROOT

PROBE = {"history": [{"movie_id": 3, "rating": 5.0}, {"movie_id": 44}], "k": 6}


def run_recs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recs", *args], cwd=ROOT, env=child_env(), capture_output=True,
                          text=True, timeout=120)


def _rehash(bundle: Path, name: str) -> None:
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    data = (bundle / name).read_bytes()
    manifest["files"][name].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    manifest_path.write_text(json.dumps(manifest))


def flipped(name: str) -> Callable[[Bundle, Path], Path]:
    """A copy of the bundle with one byte of ``name`` flipped (same size, another sha256)."""

    def make(good: Bundle, out: Path) -> Path:
        shutil.copytree(good.path, out)
        data = bytearray((out / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (out / name).write_bytes(bytes(data))
        return out

    return make


def foreign_catalog(good: Bundle, out: Path) -> Path:
    """The catalog of another model (fewer movies), with the manifest's hash updated to match it."""
    shutil.copytree(good.path, out)
    other = write_synthetic_bundle(out.parent / "other-catalog", n_movies=50, dimension=16, seed=5)
    shutil.copy(other.path / "catalog.json", out / "catalog.json")
    _rehash(out, "catalog.json")
    return out


def wrong_dimension(good: Bundle, out: Path) -> Path:
    """A manifest that says 32 dimensions over 16-dimensional towers and vectors."""
    shutil.copytree(good.path, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["dimension"] = 32
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


# name: (how to make it, what the error must name, whether `recs serve` reads that file at start)
BAD_BUNDLES: dict[str, tuple[Callable[[Bundle, Path], Path], str, bool]] = {
    "corrupted user tower": (flipped("user_tower.npz"), r"user_tower\.npz: sha256", True),
    "corrupted item tower": (flipped("item_tower.npz"), r"item_tower\.npz: sha256", False),  # the API has no use for it
    "corrupted movie vectors": (flipped("movie_vectors.npy"), r"movie_vectors\.npy: sha256", True),
    "another model's catalog": (foreign_catalog, r"catalog\.json: 50 movies|movie_vectors\.npy.*\(50, 16\)", True),
    "wrong dimension": (wrong_dimension, r"(user_tower\.npz|movie_vectors\.npy).*\b32\b", True),
}


@pytest.fixture
def deployment(fault_bundle: Bundle, tmp_path: Path):
    """The good bundle indexed into an embedded store and served by `recs serve` (its own process)."""
    store = tmp_path / "store"
    built = run_recs("index", "rebuild", "--bundle", str(fault_bundle.path), "--embedded-store", str(store))
    assert built.returncode == 0, built.stderr[-3000:]
    with ServerProcess(str(fault_bundle.path), str(store), log=tmp_path / "serve.log") as server:
        yield store, server


@pytest.mark.parametrize("kind", list(BAD_BUNDLES))
def test_a_bad_bundle_is_refused_and_the_live_state_kept(kind: str, fault_bundle: Bundle, deployment,
                                                         tmp_path: Path) -> None:
    make, names, read_by_the_api = BAD_BUNDLES[kind]
    bad = make(fault_bundle, tmp_path / "bad")
    store, server = deployment
    client = HttpClient(server.url)
    status, before = client.request("POST", "/recommendations", PROBE)
    assert status == 200
    alias_before = (store / "alias.json").read_bytes()
    indices_before = sorted(p.name for p in (store / "indices").iterdir())

    if read_by_the_api:
        # WHEN a new `recs serve` is started on the bad bundle (a fresh store: it serves the bundle itself)
        try:
            refused = run_recs("serve", "--bundle", str(bad), "--store", str(tmp_path / "fresh"), "--port", "0")
        except subprocess.TimeoutExpired:
            pytest.fail(f"recs serve started on a bundle with {kind}")
        # THEN it refuses to start, with one line naming the file and the reason, no traceback
        assert refused.returncode == 2
        assert re.search(names, refused.stderr), refused.stderr
        assert "cannot start the service" in refused.stderr and "Traceback" not in refused.stderr

    # WHEN it is offered to the indexer
    rebuild = run_recs("index", "rebuild", "--bundle", str(bad), "--embedded-store", str(store))
    # THEN the rebuild fails naming the file, before anything is written: the alias and the indices stay
    assert rebuild.returncode != 0
    assert re.search(names, rebuild.stderr), rebuild.stderr
    assert (store / "alias.json").read_bytes() == alias_before
    assert sorted(p.name for p in (store / "indices").iterdir()) == indices_before

    # AND the running service answers exactly as before, from the same (still valid) cache generation
    status, after = client.request("POST", "/recommendations", PROBE)
    assert status == 200 and after["items"] == before["items"] and after["cached"] is True
    status, health = client.request("GET", "/health")
    assert status == 200 and health["status"] == "ok" and health["model_version"] == fault_bundle.model_version
    client.close()


def test_a_delta_with_another_models_bundle_is_refused(fault_bundle: Bundle, deployment, tmp_path: Path) -> None:
    store, server = deployment
    other = write_synthetic_bundle(tmp_path / "m2", n_movies=60, dimension=16, history_length=10, seed=8,
                                   model_version="faults-m2")
    delta = tmp_path / "delta.json"
    delta.write_text(json.dumps({"upsert": [{"movieId": 900001, "title": "New (2024)", "genres": "Drama"}],
                                 "delete": [3]}))
    alias_before = (store / "alias.json").read_bytes()
    # WHEN a delta is applied with the item tower of another model than the live index's
    update = run_recs("index", "update", str(delta), "--bundle", str(other.path), "--embedded-store", str(store))
    # THEN it is refused, naming both models, before anything is written
    assert update.returncode != 0
    assert "faults-m1" in update.stderr and "faults-m2" in update.stderr
    assert (store / "alias.json").read_bytes() == alias_before
    status, movie = HttpClient(server.url).request("GET", "/movies/3")
    assert status == 200 and movie["movie_id"] == 3
