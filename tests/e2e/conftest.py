"""The end-to-end tests' model: a tiny two-tower model trained once per session on the bundled data.

``recs train`` runs as a child process (TensorFlow never enters the test process), with settings that
make it quick (one epoch, small batches, a short history, 16 dimensions a member): the model is weak but
real, and its bundle is exactly what a full training writes, the default ensemble of two models included
(31-float vectors through the indexer's mapping, OpenSearch and the service).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.load import child_env
from core.bundle import Bundle, open_bundle

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "ml-latest-small"
TRAIN_ARGS = ("--epochs", "1", "--batch-size", "256", "--history-length", "10", "--dimension", "16",
              "--no-baselines", "--quiet", "--json")


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    out = tmp_path_factory.mktemp("trained")
    result = subprocess.run(
        [sys.executable, "-m", "recs", "train", "--data", str(DATA), "--out", str(out / "bundle"),
         "--report", str(out / "report"), *TRAIN_ARGS],
        cwd=ROOT, env=child_env(TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    bundle = open_bundle(out / "bundle")
    assert summary["model_version"] == bundle.model_version
    assert summary["dataset"]["movies"] == len(bundle.catalog) == 9742
    assert bundle.user_tower.tower_type == "ensemble" and bundle.dimension == 2 * 15 + 1  # the default: two members
    return bundle
