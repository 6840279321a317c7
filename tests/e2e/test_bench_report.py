"""``python -m bench``: one benchmark run through the runner, and the report written from results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bench.__main__ as runner
from recs.local.synthetic import write_synthetic_bundle

RESULTS: dict[str, dict[str, Any]] = {
    "training": {"train_wall_seconds": 61.2, "train_seconds_in_process": 40.0, "epochs_run": 9,
                 "peak_rss_mib": 1500.0, "budget_seconds": 180.0, "served_recall@10": 0.1456,
                 "bundle_bytes": {"user_tower.npz": 2_400_000},
                 "user_tower_latency": {"batch_1": {"p50_ms": 0.04, "p99_ms": 0.09}}},
    "cold_start": {"runs": 7, "numpy_handler": {"median_ms": 231.0, "import_median_ms": 193.0,
                                                "first_request_median_ms": 29.0, "cpu_median_ms": 210.0},
                   "tensorflow_savedmodel": {"median_ms": 2951.0}, "tensorflow_over_numpy": 12.8,
                   "budget_ms": 300.0, "within_budget": True, "asset_unzipped_bytes": 58 * 2**20,
                   "asset_zipped_bytes": 19 * 2**20},
    "latency": {"sizes": {"10000": {"miss": {"p50_ms": 0.55, "p99_ms": 0.74, "n": 300},
                                    "hit": {"p50_ms": 0.27, "p99_ms": 0.36, "n": 300}}},
                "redis": {"catalog": 10000, "ping": {"p50_ms": 0.031, "p99_ms": 0.055, "n": 2000}}},
    "indexer": {"runs": [{"movies": 100_000, "server": "sink", "docs_per_s": 8012.0, "seconds": 12.5,
                          "peak_rss_mb": 58.0},
                         {"movies": 1_000_000, "server": "sink", "docs_per_s": 8252.0, "seconds": 121.2,
                          "peak_rss_mb": 58.3}],
                "ratios": {"catalog": 10.0, "peak_rss": 1.0}},
    "scaling": {"target_met": True, "traces": {"synthetic": {
        "policies": {"none": {"cold_starts": 636, "cold_fraction": 2.2e-5, "p999_added_ms": 0.5,
                              "mean_provisioned": 0.0, "weekly_bill_usd": {"x86_64": {"total": 28.27}}},
                     "predictive+tt": {"cold_starts": 8, "cold_fraction": 2.7e-7, "provisioned_gb_seconds": 9_832_200,
                                       "mean_provisioned": 16.26, "p999_added_ms": 0.0,
                                       "weekly_bill_usd": {"x86_64": {"total": 59.9}}}},
        "cold_start_reduction_vs_tt": 0.988, "bill_vs_tt": {"x86_64": 2.07, "arm64": 2.02}}}},
    "load": {"errors": 0, "results": {"memory": {"mostly-hits": {
        "requests_per_second": 1590.0, "p50_ms": 4.4, "p95_ms": 10.7, "p99_ms": 14.9, "errors": 0,
        "cache_hit_ratio": 0.952, "requests": 4777}}}},
    "scale": {"shapes": [{"shape": "1m", "ratings": 1_000_209, "layout": "dat",
                          "generate": {"seconds": 15.0, "peak_rss_mib": 400.0},
                          "train": {"seconds": 300.0, "peak_rss_mib": 1400.0, "examples": 800_000, "epochs_run": 3,
                                    "epoch_seconds": [90.0, 80.0, 80.0], "args": ["--epochs", "3"],
                                    "stages": {"load": {"seconds": 2.5, "peak_rss_mib": 300.0},
                                               "training": {"seconds": 250.0, "peak_rss_mib": 1400.0}}},
                          "metrics": {"two-tower (served)": {"recall@10": 0.0712}},
                          "index": {"seconds": 0.4, "peak_rss_mib": 70.0, "docs_per_s": 9000.0},
                          "xla": {"xla_on": {"epoch_seconds": [30.0, 20.0]}, "xla_off": {"epoch_seconds": [31.0, 29.0]},
                                  "speedup_after_first_epoch": 1.45}}],
              "ratios": None},
}


def _summary(runs: dict[str, dict[str, Any]], quick: bool = False) -> dict[str, Any]:
    return {"started_at": "2026-11-23T01:00:00+00:00", "seconds": 600.0, "quick": quick,
            "machine": {"cpu": "Test CPU 9000", "cpus": 2, "memory_gb": 8.0, "os": "Linux", "python": "3.11.7"},
            "git": {"commit": "abc1234", "uncommitted_changes": False},
            "load_average_before": 1.5, "load_average_after": 2.5, "benchmarks": runs}


def _run(name: str, result: dict[str, Any] | None, ok: bool = True) -> dict[str, Any]:
    run: dict[str, Any] = {"ok": ok, "returncode": 0 if ok else 1, "seconds": 12.0,
                           "command": f"python -m bench.{name}", "about": "what it measures", "result": result,
                           "charts": [f"{name}.png"] if ok else [], "stderr_tail": None if ok else ["Boom: it broke"]}
    if result is not None:
        run["headline"], run["tables"] = runner.VIEWS[name](result)
    return run


def test_the_report_has_the_machine_the_headlines_and_a_table_per_benchmark() -> None:
    runs = {name: _run(name, result) for name, result in RESULTS.items()}
    report = runner.write_report(_summary(runs))
    assert report.startswith("# Benchmark report")
    assert "Test CPU 9000, 2 CPUs" in report and "shared and noisy" in report and "`abc1234`" in report
    for title in runner.TITLES.values():
        assert f"\n## {title}\n" in report
    assert "231 ms median" in report and "12.8x" in report  # cold start headline
    assert "0.000027%" in report  # a tiny share stays visible
    assert "98.8% fewer cold starts than target tracking, for 2.07x its weekly bill" in report
    assert "(no provisioned concurrency: $28.27 a week)" in report and "| synthetic | none | 636 |" in report
    assert "| memory | mostly-hits | 1,590 | 4.40 ms |" in report
    assert "| 1m | 1,000,209 | training | 250.0 s | 1,400 MiB | 3 epochs, 83 s/epoch |" in report
    assert "XLA 1.45x faster per epoch" in report
    assert "![load.png](results/load.png)" in report
    assert "Quick pass" not in report


def test_a_failed_benchmark_is_reported_and_views_survive_missing_fields() -> None:
    for view in runner.VIEWS.values():
        headline, tables = view({})
        assert isinstance(headline, dict) and tables
    runs = {"training": _run("training", None, ok=False), "load": _run("load", RESULTS["load"])}
    report = runner.write_report(_summary(runs, quick=True))
    assert "**failed** (exit 1)" in report and "Boom: it broke" in report
    assert "Quick pass" in report and "**Load over HTTP**" in report and "**Training**" not in report


def test_the_runner_runs_a_benchmark_and_keeps_its_output(tmp_path: Path) -> None:
    bundle = write_synthetic_bundle(tmp_path / "bundle", n_movies=100, dimension=8, seed=3)
    load = runner.Benchmark("load", (), ("--duration", "0.5", "--clients", "2", "--caches", "memory",
                                         "--bundle", str(bundle.path)), "load", writes_charts=True)
    run = runner.run_benchmark(load, quick=True, results=tmp_path / "results")
    assert run["ok"] and run["result"]["benchmark"] == "load" and run["result"]["errors"] == 0
    saved = json.loads((tmp_path / "results" / "load.json").read_text())
    assert saved == run["result"]
    assert (tmp_path / "results" / "load.txt").read_text().strip().splitlines()[-1].startswith("{")
    if run["result"]["chart"]:
        assert run["charts"] == ["load.png"]


def test_a_failing_benchmark_keeps_its_error_in_the_tail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the runner's echo thread is the only reader of the child's stderr: every line reaches the echo and the tail
    load = runner.Benchmark("load", (), ("--duration", "soon"), "load")
    run = runner.run_benchmark(load, quick=True, results=tmp_path / "results")
    assert not run["ok"] and run["returncode"] == 2 and run["result"] is None
    assert any("--duration" in line and "invalid" in line for line in run["stderr_tail"])
    echoed = capsys.readouterr().err
    assert "[load]" in echoed and "invalid float value" in echoed


def test_the_report_is_rewritten_from_results_with_later_runs_marked(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    runs = {name: _run(name, RESULTS[name]) for name in ("indexer", "load")}
    stored = {**_summary(runs), "benchmarks": {n: {k: v for k, v in r.items() if k != "tables"}
                                               for n, r in runs.items()}}
    (results / "summary.json").write_text(json.dumps(stored))
    (results / "load.json").write_text(json.dumps(RESULTS["load"]))  # the same result: not a later run
    later = {**RESULTS["indexer"], "measured_at": "2026-11-30T21:40:00+00:00",
             "runs": [{**r, "docs_per_s": 19_000.0} for r in RESULTS["indexer"]["runs"]]}
    (results / "indexer.json").write_text(json.dumps(later))
    report = runner.write_report(runner.from_results(results))
    assert "**Sections from later runs**" in report and "Indexer full rebuild (2026-11-30 21:40 UTC)" in report
    assert "Load over HTTP (" not in report.split("## Headline figures")[0]
    assert "1,000,000 movies at 19,000 docs/s" in report and "8,252 docs/s" not in report
