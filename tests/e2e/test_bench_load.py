"""``python -m bench.load``: its contract (a table, a JSON last line, zero errors, the two mixes) and its parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.load import Sample, drive, misses_mix, summarize
from recs.local.synthetic import write_synthetic_bundle
from tests.e2e.conftest import ROOT


def test_bench_load_runs_both_mixes_on_both_caches(tmp_path: Path) -> None:
    bundle = write_synthetic_bundle(tmp_path / "bundle", n_movies=200, dimension=16, seed=2)
    result = subprocess.run(
        [sys.executable, "-m", "bench.load", "--duration", "1", "--clients", "2", "--pool", "10",
         "--bundle", str(bundle.path), "--out", str(tmp_path / "results")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["benchmark"] == "load" and summary["errors"] == 0 and summary["movies"] == 200
    assert any(line.startswith("cache ") and "req/s" in line for line in lines)  # the human table
    for cache in ("memory", "redis"):
        hits, misses = summary["results"][cache]["mostly-hits"], summary["results"][cache]["all-misses"]
        for row in (hits, misses):
            assert row["requests"] > 0 and row["errors"] == 0 and set(row["statuses"]) == {"200"}
            assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
        # the pool was asked once before: 95% of the hit mix comes from the cache; no miss repeats
        assert hits["cache_hit_ratio"] > 0.8
        assert misses["cache_hit_ratio"] == 0.0
    if summary["chart"]:
        assert Path(summary["chart"]).is_file()


def test_summary_figures() -> None:
    samples = [Sample(0.0, ms / 1000, 200, cached=ms % 2 == 0) for ms in range(1, 101)]
    samples += [Sample(0.0, 0.5, 503, error="index_unavailable"), Sample(0.0, 0.001, 0, error="ConnectionRefusedError")]
    out = summarize(samples, wall_seconds=2.0, clients=4)
    assert out["requests"] == 102 and out["requests_per_second"] == 51.0
    assert out["errors"] == 2 and out["statuses"] == {"0": 1, "200": 100, "503": 1}
    assert out["cache_hit_ratio"] == 0.5  # among the answered requests
    assert out["max_ms"] == 500.0 and out["p50_ms"] is not None and out["p50_ms"] < out["p99_ms"]


def test_the_driver_stops_by_itself_and_survives_a_dead_server(unreachable_url: str) -> None:
    run = drive(unreachable_url, misses_mix([1, 2, 3]), clients=2, duration=0.3)
    assert run.samples and all(s.status == 0 and s.error for s in run.samples)
    assert run.summary()["errors"] == len(run.samples)
