"""The local retraining loop end to end, each step its own process as a user runs it: a live model (the session's
tiny trained bundle, indexed as `recs up` leaves it), `recs retrain` (a real, one-epoch training; the gate; a
publish into a bundle root; the indexer's rebuild), `recs serve --bundle <root>/` serving the new model, and
`recs index rollback` taking the API back to the old one (the retrain copied it under the root)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.load import HttpClient, ServerProcess, child_env
from core.bundle import Bundle, open_bundle
from core.live_index import live_model_version
from tests.e2e.conftest import DATA

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TINY = ("--epochs", "1", "--batch-size", "256", "--history-length", "10", "--dimension", "16", "--quiet")


def run(*args: str) -> tuple[int, list[str], str]:
    result = subprocess.run([sys.executable, "-m", "recs", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=900, env=child_env(TF_CPP_MIN_LOG_LEVEL="2"))
    return result.returncode, result.stdout.strip().splitlines(), result.stderr


def health(client: HttpClient, model_version: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        status, body = client.request("GET", "/health")
        if (status == 200 and body.get("model_version") == model_version) or time.monotonic() > deadline:
            return dict(body)
        time.sleep(0.2)


def test_retrain_publishes_indexes_and_the_api_serves_the_new_model(trained_bundle: Bundle, tmp_path: Path) -> None:
    store, root = tmp_path / "index", tmp_path / "bundles"
    code, _, err = run("index", "rebuild", "--bundle", str(trained_bundle.path), "--embedded-store", str(store))
    assert code == 0, err[-2000:]

    # Both models are one-epoch toys, so the tolerance is wide: what is tested here is the loop, the gate's rule
    # is tested in tests/training.
    code, out, err = run("retrain", "--data", str(DATA), "--bundle-root", f"{root}/", "--embedded-store", str(store),
                         "--live-bundle", str(trained_bundle.path), "--tolerance", "0.5", *TINY)
    assert code == 0, err[-3000:]
    summary = json.loads(out[-1])
    new = summary["model_version"]
    assert summary["decision"] == "published" and summary["indexed"] is True
    assert summary["live_model_version"] == trained_bundle.model_version
    assert summary["bundle"] == f"{root}/{new}" and (root / new / "retrain-report.md").is_file()
    open_bundle(root / new).verify()
    open_bundle(root / trained_bundle.model_version).verify()  # the replaced model, copied in for rollback
    assert live_model_version(embedded_store=store) == new

    server = ServerProcess(f"{root}/", str(store), log=tmp_path / "serve.log")
    try:
        client = HttpClient(server.url)
        assert health(client, new)["model_version"] == new
        status, answer = client.request("POST", "/recommendations",
                                        {"history": [{"movie_id": 260, "rating": 5.0}], "k": 5})
        assert status == 200 and answer["model_version"] == new and len(answer["items"]) == 5

        code, _, err = run("index", "rollback", "--embedded-store", str(store))
        assert code == 0, err[-2000:]
        assert health(client, trained_bundle.model_version)["model_version"] == trained_bundle.model_version
    finally:
        server.stop()

