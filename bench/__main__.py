"""Every benchmark of the project, one report: ``python -m bench [--quick] [--only NAMES] [--skip NAMES]``.

Runs, each as its own process and one after the other (never two at once: they would measure each
other), ``bench.training``, ``bench.cold_start``, ``bench.latency``, ``bench.indexer``,
``bench.scaling``, ``bench.load`` and ``bench.scale`` (the 1m shape; ``python -m bench.scale --shapes
1m,10m,32m`` for the whole cost curve); keeps each one's output (``bench/results/<name>.txt``) and the
JSON object of its last line (``bench/results/<name>.json``), then writes

* ``bench/results/summary.json``: the machine, the commit, and per benchmark its status, wall time,
  command, headline figures and full result;
* ``bench/REPORT.md``: the machine, the headline figures, one table per benchmark and links to the
  charts (``bench/results/*.png``).

``--quick`` passes each benchmark its short settings (fewer runs, smaller catalogs, shorter load)
and says so in the report: about a minute and a half on this repository's 2-core machine, where the
full pass takes about 6 minutes (the 1M-movie indexer run is most of it). ``--out DIR`` writes the
report and results elsewhere (the committed ones are ``bench/``).
A benchmark that fails is reported as failed (its last stderr lines kept) and the others still
run; the exit status is 1 when any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"


@dataclass(frozen=True)
class Benchmark:
    name: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    about: str
    writes_charts: bool = False
    """It takes ``--out DIR`` for its PNGs."""


BENCHMARKS = (
    Benchmark("training", (), ("--epochs", "2"),
              "`recs train` on the bundled sample in a child process: wall time, peak memory, bundle sizes, "
              "the numpy user tower's latency"),
    Benchmark("cold_start", (), ("--runs", "3", "--skip-tensorflow"),
              "a fresh Python 3.12 process with only the Lambda asset answering one API Gateway event, "
              "against the same user tower as a TensorFlow SavedModel"),
    Benchmark("latency", (), ("--sizes", "10000", "--requests", "100"),
              "warm requests through the Lambda handler on the embedded index (10k and 1M movies), "
              "and Redis on loopback"),
    Benchmark("indexer", (), ("--quick",),
              "full rebuilds of synthetic catalogs through the real job into osmem and a bulk-absorbing sink"),
    Benchmark("scaling", (), ("--traces", "synthetic"),
              "replayed traffic through a model of Lambda concurrency: provisioned-concurrency policies "
              "compared on the same requests", writes_charts=True),
    Benchmark("load", (), ("--quick",),
              "`recs serve` over real HTTP on loopback: concurrent clients for a bounded time, "
              "mostly-hit and all-miss mixes, in-process and Redis caches", writes_charts=True),
    Benchmark("scale", ("--shapes", "1m"), ("--quick",),
              "`recs train` and a full index rebuild on a synthetic MovieLens-1M-shaped data set: wall time and "
              "peak memory of each stage, XLA on and off side by side (`--shapes 1m,10m,32m` for the cost curve)",
              writes_charts=True),
)


# -- running ----------------------------------------------------------------------------------------

def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_benchmark(bench: Benchmark, quick: bool, results: Path = RESULTS) -> dict[str, Any]:
    """Run one benchmark in a child process; its stderr is echoed (prefixed), its stdout and JSON kept in
    ``results``."""
    args = bench.quick if quick else bench.full
    out = ("--out", str(results)) if bench.writes_charts and results != RESULTS else ()
    command = [sys.executable, "-m", f"bench.{bench.name}", *args, *out]
    _say(f"== bench.{bench.name} {' '.join(args)}".rstrip())
    started, wall_started = time.monotonic(), time.time()
    tail: deque[str] = deque(maxlen=40)
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})

    def echo() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            tail.append(line.rstrip("\n"))
            print(f"   [{bench.name}] {line.rstrip()}", file=sys.stderr, flush=True)

    echoer = threading.Thread(target=echo, daemon=True)
    echoer.start()
    # only the echo thread reads stderr (``communicate`` would race it for lines and close the pipe under it)
    assert proc.stdout is not None
    with proc:
        stdout = proc.stdout.read()
        proc.wait()
        echoer.join(timeout=10)
    seconds = time.monotonic() - started
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{bench.name}.txt").write_text(stdout, encoding="utf-8")
    result: dict[str, Any] | None = None
    lines = stdout.strip().splitlines()
    if lines:
        with contextlib.suppress(ValueError):
            parsed = json.loads(lines[-1])
            result = parsed if isinstance(parsed, dict) else None
    if result is not None:
        (results / f"{bench.name}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    ok = proc.returncode == 0 and result is not None
    _say(f"   bench.{bench.name}: {'done' if ok else 'FAILED'} in {seconds:.0f} s")
    # the charts this run wrote (not older ones of other settings)
    charts = sorted(p.name for p in results.glob(f"{bench.name}*.png") if p.stat().st_mtime >= wall_started - 1)
    return {
        "ok": ok,
        "returncode": proc.returncode,
        "seconds": round(seconds, 1),
        "command": f"python -m bench.{bench.name} {' '.join(args)}".rstrip(),
        "about": bench.about,
        "result": result,
        "charts": charts,
        "stderr_tail": None if ok else list(tail),
    }


# -- the machine ------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": memory_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def git_commit() -> dict[str, Any]:
    from training.provenance import source_revision

    return source_revision(ROOT) or {"commit": None, "uncommitted_changes": False}


# -- headline figures and tables ---------------------------------------------------------------------

Table = tuple[list[str], list[list[str]]]


def _fmt(value: Any, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value}{unit}"


def _percent(fraction: Any) -> str:
    """A share as a percentage with three significant digits (tiny shares stay visible)."""
    if not isinstance(fraction, int | float):
        return "-"
    if fraction == 0:
        return "0%"
    percent = 100 * fraction
    decimals = max(2, 2 - math.floor(math.log10(abs(percent))))
    return f"{percent:.{decimals}f}".rstrip("0").rstrip(".") + "%"


def _get(data: Any, *path: Any) -> Any:
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def training_view(r: dict[str, Any]) -> tuple[dict[str, Any], list[Table]]:
    latency = r.get("user_tower_latency") or {}
    headline = {
        "train_wall_seconds": r.get("train_wall_seconds"),
        "epochs_run": r.get("epochs_run"),
        "served_recall@10": r.get("served_recall@10"),
        "user_tower_p50_ms_batch_1": _get(latency, "batch_1", "p50_ms"),
    }
    rows = [
        ["training wall time (incl. TensorFlow import)", _fmt(r.get("train_wall_seconds"), 1, " s")
         + f" (budget {_fmt(r.get('budget_seconds'), 0, ' s')})"],
        ["training time inside the process", _fmt(r.get("train_seconds_in_process"), 1, " s")],
        ["epochs run", _fmt(r.get("epochs_run"))],
        ["peak RSS of training", _fmt(r.get("peak_rss_mib"), 0, " MiB")],
        ["served Recall@10 (numpy towers, exported vectors)", _fmt(r.get("served_recall@10"), 4)],
    ]
    sizes = r.get("bundle_bytes") or {}
    rows += [[f"bundle file {name}", _fmt(size / 1024, 0, " KiB")] for name, size in sizes.items()]
    if r.get("user_tower_budget_bytes"):
        rows.append([f"user tower ({_fmt(r.get('members'))} member(s)) within its budget",
                     f"{'yes' if r.get('user_tower_within_budget') else 'NO'} "
                     f"({_fmt(r['user_tower_budget_bytes'] / 2**20, 0, ' MiB')})"])
    rows += [[f"numpy user tower, {name.replace('_', ' ')}, p50 / p99",
              f"{_fmt(v.get('p50_ms'), 3)} / {_fmt(v.get('p99_ms'), 3)} ms"] for name, v in latency.items()]
    return headline, [(["figure", "value"], rows)]


def cold_start_view(r: dict[str, Any]) -> tuple[dict[str, Any], list[Table]]:
    headline = {
        "numpy_handler_median_ms": _get(r, "numpy_handler", "median_ms"),
        "tensorflow_median_ms": _get(r, "tensorflow_savedmodel", "median_ms"),
        "tensorflow_over_numpy": r.get("tensorflow_over_numpy"),
        "within_budget": r.get("within_budget"),
    }
    rows = []
    for key, label in (("numpy_handler", "numpy handler (Lambda asset, Python 3.12)"),
                       ("numpy_handler_xray", "numpy handler + X-Ray tracer"),
                       ("tensorflow_savedmodel", "TensorFlow SavedModel of the same user tower")):
        run = r.get(key)
        if run:
            rows.append([label, _fmt(run.get("median_ms"), 0, " ms"), _fmt(run.get("import_median_ms"), 0, " ms"),
                         _fmt(run.get("first_request_median_ms"), 1, " ms"), _fmt(run.get("cpu_median_ms"), 0, " ms")])
    notes = [["TensorFlow / numpy", _fmt(r.get("tensorflow_over_numpy"), 1, "x")],
             ["budget (numpy handler, median)", f"{_fmt(r.get('budget_ms'), 0, ' ms')}: "
              f"{'met' if r.get('within_budget') else 'MISSED'}"],
             ["Lambda asset, unzipped / zipped", f"{_fmt((r.get('asset_unzipped_bytes') or 0) / 2**20, 1)} / "
              f"{_fmt((r.get('asset_zipped_bytes') or 0) / 2**20, 1)} MB"],
             ["runs per figure (medians)", _fmt(r.get("runs"))]]
    return headline, [(["fresh process, spawn to answer", "median", "import", "1st request", "CPU"], rows),
                      (["figure", "value"], notes)]


def latency_view(r: dict[str, Any]) -> tuple[dict[str, Any], list[Table]]:
    headline: dict[str, Any] = {}
    rows = []
    for size, row in (r.get("sizes") or {}).items():
        for name in ("miss", "miss_filtered", "hit"):
            m = row.get(name) or {}
            rows.append([f"{int(size):,}", name.replace("_", " + "), _fmt(m.get("p50_ms"), 2, " ms"),
                         _fmt(m.get("p99_ms"), 2, " ms"), _fmt(m.get("n"))])
            headline[f"{size}_{name}_p50_ms"] = m.get("p50_ms")
            headline[f"{size}_{name}_p99_ms"] = m.get("p99_ms")
    redis = r.get("redis") or {}
    for name, label in (("ping", "Redis PING on loopback"), ("get_2kb", "Redis GET of 2 KB"),
                        ("handler_hit_via_redis", "handler, hit served from Redis")):
        m = redis.get(name)
        if m:
            rows.append([_fmt(redis.get("catalog")) if name == "handler_hit_via_redis" else "-", label,
                         _fmt(m.get("p50_ms"), 3, " ms"), _fmt(m.get("p99_ms"), 3, " ms"), _fmt(m.get("n"))])
    headline["redis_hit_p50_ms"] = _get(redis, "handler_hit_via_redis", "p50_ms")
    return headline, [(["movies", "request", "p50", "p99", "n"], rows)]


def indexer_view(r: dict[str, Any]) -> tuple[dict[str, Any], list[Table]]:
    runs = r.get("runs") or []
    rows = [[_fmt(x.get("movies")), str(x.get("server")), _fmt(x.get("docs_per_s"), 0), _fmt(x.get("seconds"), 1),
             _fmt(x.get("client_cpu_ms_per_1k_docs"), 1, " ms"), _fmt(x.get("encode_cpu_ms_per_1k_docs"), 1, " ms"),
             _fmt(x.get("peak_rss_mb"), 0, " MB")] for x in runs]
    sink = [x for x in runs if x.get("server") == "sink"]
    ratios = r.get("ratios") or {}
    headline = {
        "largest_catalog": sink[-1].get("movies") if sink else None,
        "largest_catalog_docs_per_s_sink": sink[-1].get("docs_per_s") if sink else None,
        "peak_rss_ratio_largest_over_smallest": ratios.get("peak_rss"),
        "osmem_docs_per_s": next((x.get("docs_per_s") for x in reversed(runs) if x.get("server") == "osmem"), None),
    }
    notes = [[f"{k.replace('_', ' ')}", _fmt(v, 2)] for k, v in ratios.items()]
    return headline, [(["movies", "server", "docs/s", "wall s", "client CPU /1k docs", "of which encoding",
                        "peak RSS"], rows), (["largest / smallest catalog (sink)", "ratio"], notes)]


def scaling_view(r: dict[str, Any]) -> tuple[dict[str, Any], list[Table]]:
    rows = []
    headline: dict[str, Any] = {"target_met": r.get("target_met")}
    for trace, t in (r.get("traces") or {}).items():
        for policy, p in (t.get("policies") or {}).items():
            bill = (p.get("weekly_bill_usd") or {}).get("x86_64") or {}
            rows.append([trace, policy, _fmt(p.get("cold_starts")), _percent(p.get("cold_fraction")),
                         _fmt(p.get("p999_added_ms"), 1, " ms"), _fmt(p.get("mean_provisioned"), 2),
                         "$" + _fmt(bill.get("total"), 2) if bill.get("total") is not None else "-"])
        headline[f"{trace}_cold_start_reduction_vs_tt"] = t.get("cold_start_reduction_vs_tt")
        headline[f"{trace}_bill_vs_tt_x86_64"] = (t.get("bill_vs_tt") or {}).get("x86_64")
        headline[f"{trace}_none_bill_x86_64"] = (((t.get("policies") or {}).get("none") or {})
                                                  .get("weekly_bill_usd") or {}).get("x86_64", {}).get("total")
    return headline, [(["trace", "policy", "cold starts / week", "cold-started requests", "p99.9 added",
                        "mean provisioned", "weekly bill (x86_64)"], rows)]


def load_view(r: dict[str, Any]) -> tuple[dict[str, Any], list[Table]]:
    rows = []
    headline: dict[str, Any] = {"errors": r.get("errors")}
    for cache, mixes in (r.get("results") or {}).items():
        for mix, m in mixes.items():
            rows.append([cache, mix, _fmt(m.get("requests_per_second"), 0), _fmt(m.get("p50_ms"), 2, " ms"),
                         _fmt(m.get("p95_ms"), 2, " ms"), _fmt(m.get("p99_ms"), 2, " ms"), _fmt(m.get("errors")),
                         _fmt(m.get("cache_hit_ratio"), 3), _fmt(m.get("requests"))])
            headline[f"{cache}_{mix}_rps"] = m.get("requests_per_second")
            headline[f"{cache}_{mix}_p99_ms"] = m.get("p99_ms")
    return headline, [(["cache", "mix", "req/s", "p50", "p95", "p99", "errors", "hit ratio", "requests"], rows)]


def scale_view(r: dict[str, Any]) -> tuple[dict[str, Any], list[Table]]:
    rows = []
    for shape in r.get("shapes") or []:
        train = shape.get("train") or {}
        stages = train.get("stages") or {}
        rows.append([str(shape.get("shape")), _fmt(shape.get("ratings")), "generate",
                     _fmt(_get(shape, "generate", "seconds"), 1, " s"), _fmt(_get(shape, "generate", "peak_rss_mib"), 0,
                                                                              " MiB"), shape.get("layout") or ""])
        for name in ("load", "examples", "training", "evaluation", "export"):
            st = stages.get(name)
            if not st:
                continue
            note = ""
            if name == "examples":
                note = f"{_fmt(train.get('examples'))} examples"
            elif name == "training":
                eps = train.get("epoch_seconds") or []
                note = (f"{_fmt(train.get('epochs_run'))} epochs, {_fmt(sum(eps) / len(eps), 0, ' s')}/epoch"
                        if eps else "")
            elif name == "evaluation":
                note = f"served Recall@10 {_fmt(_get(shape, 'metrics', 'two-tower (served)', 'recall@10'), 4)}"
            rows.append([str(shape.get("shape")), _fmt(shape.get("ratings")), name, _fmt(st.get("seconds"), 1, " s"),
                         _fmt(st.get("peak_rss_mib"), 0, " MiB"), note])
        rows.append([str(shape.get("shape")), _fmt(shape.get("ratings")), "recs train (whole run)",
                     _fmt(train.get("seconds"), 1, " s"), _fmt(train.get("peak_rss_mib"), 0, " MiB"),
                     " ".join(train.get("args") or [])])
        index = shape.get("index")
        if index:
            rows.append([str(shape.get("shape")), _fmt(shape.get("ratings")), "index rebuild (bulk sink)",
                         _fmt(index.get("seconds"), 1, " s"), _fmt(index.get("peak_rss_mib"), 0, " MiB"),
                         f"{_fmt(index.get('docs_per_s'), 0)} docs/s"])
    shapes = r.get("shapes") or []
    largest = shapes[-1] if shapes else {}
    xla = next((s.get("xla") for s in shapes if s.get("xla")), None) or {}
    headline = {
        "largest_shape": largest.get("shape"),
        "largest_train_seconds": _get(largest, "train", "seconds"),
        "largest_peak_rss_mib": _get(largest, "train", "peak_rss_mib"),
        "xla_speedup": xla.get("speedup_after_first_epoch"),
        "peak_rss_ratio": _get(r, "ratios", "peak_rss"),
        "ratings_ratio": _get(r, "ratios", "ratings"),
    }
    tables: list[Table] = [(["shape", "ratings", "stage", "wall", "peak RSS", "notes"], rows)]
    notes = [[k.replace("_", " "), _fmt(v, 2)] for k, v in (r.get("ratios") or {}).items()
             if isinstance(v, int | float)]
    if xla:
        notes.append(["seconds per epoch with XLA / without", f"{xla.get('xla_on', {}).get('epoch_seconds')} / "
                      f"{xla.get('xla_off', {}).get('epoch_seconds')}"])
        notes.append(["XLA speed-up (epochs after the first)", _fmt(xla.get("speedup_after_first_epoch"), 2, "x")])
    if notes:
        tables.append((["growth, largest / smallest shape", "ratio"], notes))
    return headline, tables


VIEWS: dict[str, Callable[[dict[str, Any]], tuple[dict[str, Any], list[Table]]]] = {
    "training": training_view, "cold_start": cold_start_view, "latency": latency_view,
    "indexer": indexer_view, "scaling": scaling_view, "load": load_view, "scale": scale_view,
}
TITLES = {"training": "Training", "cold_start": "Cold start", "latency": "Warm latency (handler, in process)",
          "indexer": "Indexer full rebuild", "scaling": "Predictive scaling (simulation)",
          "load": "Load over HTTP", "scale": "Data size: the cost curve"}


def headline_lines(runs: dict[str, dict[str, Any]]) -> list[str]:
    """The few figures the README quotes, as Markdown bullets (only for benchmarks that ran)."""
    out = []
    h = {name: run.get("headline") or {} for name, run in runs.items() if run.get("ok")}
    if "training" in h:
        t = h["training"]
        out.append(f"**Training** on ml-latest-small: {_fmt(t['train_wall_seconds'], 0, ' s')} wall "
                   f"({_fmt(t['epochs_run'])} epochs), served Recall@10 {_fmt(t['served_recall@10'], 4)}; "
                   f"numpy user tower {_fmt(t['user_tower_p50_ms_batch_1'], 3, ' ms')} p50 per request.")
    if "cold_start" in h:
        c = h["cold_start"]
        tf = (f"; TensorFlow SavedModel {_fmt(c['tensorflow_median_ms'], 0, ' ms')} "
              f"({_fmt(c['tensorflow_over_numpy'], 1, 'x')})") if c.get("tensorflow_median_ms") else ""
        out.append(f"**Cold start** (fresh process, Lambda asset, spawn to answer): "
                   f"{_fmt(c['numpy_handler_median_ms'], 0, ' ms')} median{tf}.")
    if "latency" in h:
        lat = h["latency"]
        parts = [f"{int(size):,} movies miss {_fmt(lat.get(f'{size}_miss_p50_ms'), 2)} / "
                 f"{_fmt(lat.get(f'{size}_miss_p99_ms'), 2)} ms, hit {_fmt(lat.get(f'{size}_hit_p50_ms'), 2)} / "
                 f"{_fmt(lat.get(f'{size}_hit_p99_ms'), 2)} ms"
                 for size in sorted({k.split('_')[0] for k in lat if k[0].isdigit()}, key=int)]
        out.append(f"**Warm latency** through the handler (p50 / p99): {'; '.join(parts)}.")
    if "indexer" in h:
        i = h["indexer"]
        osmem = f"; into osmem {_fmt(i['osmem_docs_per_s'], 0)} docs/s" if i.get("osmem_docs_per_s") else ""
        rate = _fmt(i["largest_catalog_docs_per_s_sink"], 0)
        memory = _fmt(i["peak_rss_ratio_largest_over_smallest"], 2)
        out.append(f"**Indexer**: {_fmt(i['largest_catalog'])} movies at {rate} docs/s (client side, bulk sink)"
                   f"{osmem}; peak memory x{memory} from the smallest to the largest catalog.")
    if "scaling" in h:
        s = h["scaling"]
        traces = sorted({k.split("_cold")[0] for k in s if k.endswith("_cold_start_reduction_vs_tt")})
        parts = [f"{t}: {_fmt(100 * (s.get(f'{t}_cold_start_reduction_vs_tt') or 0), 1)}% fewer cold starts than "
                 f"target tracking, for {_fmt(s.get(f'{t}_bill_vs_tt_x86_64'), 2, 'x')} its weekly bill "
                 f"(no provisioned concurrency: ${_fmt(s.get(f'{t}_none_bill_x86_64'), 2)} a week)"
                 for t in traces]
        out.append(f"**Predictive scaling** (simulated week): {'; '.join(parts)}.")
    if "scale" in h:
        sc = h["scale"]
        xla = f"; XLA {_fmt(sc.get('xla_speedup'), 2)}x faster per epoch" if sc.get("xla_speedup") else ""
        out.append(f"**Data size** (synthetic {sc.get('largest_shape')}-shaped MovieLens): `recs train` "
                   f"{_fmt(sc.get('largest_train_seconds'), 0, ' s')} wall, peak "
                   f"{_fmt(sc.get('largest_peak_rss_mib'), 0, ' MiB')}{xla}.")
    if "load" in h:
        ld = h["load"]
        parts = [f"{cache} cache {mix} {_fmt(ld.get(f'{cache}_{mix}_rps'), 0)} req/s (p99 "
                 f"{_fmt(ld.get(f'{cache}_{mix}_p99_ms'), 1)} ms)"
                 for cache in ("memory", "redis") for mix in ("mostly-hits", "all-misses")
                 if ld.get(f"{cache}_{mix}_rps") is not None]
        out.append(f"**Load over HTTP** (`recs serve`, 8 clients): {'; '.join(parts)}; {ld['errors']} errors.")
    return out


def markdown_table(table: Table) -> list[str]:
    header, rows = table
    numeric = [bool(rows) and all(_numeric(r[i]) for r in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _numeric(cell: str) -> bool:
    head = cell.split(" ")[0].replace(",", "").replace("%", "").replace("x", "")
    try:
        float(head)
    except ValueError:
        return cell == "-"
    return True


def _anchor(title: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def _later_runs_lines(runs: dict[str, dict[str, Any]]) -> list[str]:
    later = [(name, run["later_run"]) for name, run in runs.items() if run.get("later_run")]
    if not later:
        return []
    parts = "; ".join(f"{TITLES[name]} ({when[:16].replace('T', ' ')} UTC)" for name, when in later)
    return ["**Sections from later runs** (`python -m bench --from-results`: each benchmark run alone afterwards, "
            f"its results/<name>.json differs from this run's): {parts}. Their load average is the one each "
            "benchmark printed, not the one above.", ""]


def from_results(results: Path) -> dict[str, Any]:
    """The stored summary with every benchmark whose ``results/<name>.json`` differs from the result the summary
    holds (run alone since, e.g. ``python -m bench.scale``, its JSON line kept there) taking that result, marked
    as a later run with the time it was stored (its ``measured_at`` if it has one, else the file's)."""
    summary = json.loads((results / "summary.json").read_text(encoding="utf-8"))
    for bench in BENCHMARKS:
        path = results / f"{bench.name}.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text(encoding="utf-8"))
        run = summary["benchmarks"].get(bench.name) or {
            "ok": True, "returncode": 0, "seconds": 0.0, "about": bench.about,
            "command": f"python -m bench.{bench.name}", "stderr_tail": None}
        if run.get("result") == result:
            continue
        charts = sorted(p.name for p in results.glob(f"{bench.name}*.png"))
        when = result.get("measured_at") or datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(
            timespec="seconds")
        summary["benchmarks"][bench.name] = {**run, "ok": True, "result": result, "charts": charts,
                                             "later_run": str(when)}
    for name, run in summary["benchmarks"].items():
        if run.get("result") is not None:
            run["headline"], run["tables"] = VIEWS[name](run["result"])
    return summary


def write_report(summary: dict[str, Any]) -> str:
    m = summary["machine"]
    commit = summary["git"]
    started = summary["started_at"]
    runs = summary["benchmarks"]
    load_before, load_after = summary["load_average_before"], summary["load_average_after"]
    lines = [
        "# Benchmark report",
        "",
        f"Written by `python -m bench{' --quick' if summary['quick'] else ''}` on {started[:16].replace('T', ' ')} UTC "
        f"in {summary['seconds'] / 60:.1f} minutes, at commit `{commit['commit']}`"
        f"{' (with uncommitted changes in the working tree)' if commit['uncommitted_changes'] else ''}."
        + (" **Quick pass**: short settings (fewer runs, smaller catalogs, 3-second load rows); "
           "`python -m bench` runs the full one."
           if summary["quick"] else ""),
        "",
        f"**Machine**: {m['cpu']}, {m['cpus']} CPUs, {_fmt(m['memory_gb'], 1)} GB of memory, {m['os']}, "
        f"Python {m['python']}. The machine is **shared and noisy**: other work ran during the benchmarks "
        f"(1-minute load average {load_before:.1f} before, {load_after:.1f} after, on {m['cpus']} CPUs), so "
        "wall-clock figures vary from run to run by tens of percent; CPU times, memory and the ratios "
        "measured side by side within one benchmark are steadier. Each benchmark ran alone, one after "
        "the other.",
        "",
        *_later_runs_lines(runs),
        "## Headline figures",
        "",
        *[f"- {line}" for line in headline_lines(runs)],
        "",
        "| benchmark | what it measures | status | wall time | command |",
        "|---|---|---|---:|---|",
    ]
    for name, run in runs.items():
        status = "ok" if run["ok"] else f"**failed** (exit {run['returncode']})"
        lines.append(f"| [{name}](#{_anchor(TITLES[name])}) | {run['about']} | {status} | {run['seconds']:.0f} s "
                     f"| `{run['command']}` |")
    for name, run in runs.items():
        lines += ["", f"## {TITLES[name]}", "", f"`{run['command']}`: {run['about']}.", ""]
        if not run["ok"]:
            lines += ["It failed; the last lines it wrote to stderr:", "", "```",
                      *(run.get("stderr_tail") or [])[-15:], "```"]
            if not run.get("result"):
                continue
        for table in run.get("tables") or []:
            lines += [*markdown_table(table), ""]
        for chart in run.get("charts") or []:
            lines += [f"![{chart}](results/{chart})", ""]
        lines.append(f"Full output: [results/{name}.txt](results/{name}.txt), JSON: "
                     f"[results/{name}.json](results/{name}.json).")
    lines += ["", "The JSON summary of this report (machine, commit, every result) is "
              "[results/summary.json](results/summary.json).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    names = [b.name for b in BENCHMARKS]
    parser.add_argument("--quick", action="store_true", help="every benchmark's short settings (a few minutes)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(names)}")
    parser.add_argument("--skip", help="comma-separated benchmarks to leave out")
    parser.add_argument("--from-results", action="store_true",
                        help="run nothing: rewrite the report from the stored summary and every benchmark's newer "
                        "results/<name>.json (one benchmark re-run alone since), marked as later runs")
    parser.add_argument("--out", type=Path, default=BENCH,
                        help="where REPORT.md and results/ go (default: bench/, the committed report)")
    args = parser.parse_args(argv)
    report_path, results = args.out / "REPORT.md", args.out / "results"
    only = {n.strip() for n in (args.only or "").split(",") if n.strip()}
    skip = {n.strip() for n in (args.skip or "").split(",") if n.strip()}
    unknown = (only | skip) - set(names)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    chosen = [b for b in BENCHMARKS if (not only or b.name in only) and b.name not in skip]
    if args.from_results:
        summary = from_results(results)
        report_path.write_text(write_report(summary), encoding="utf-8")
        for line in headline_lines(summary["benchmarks"]):
            print(line.replace("**", ""))
        print(f"report: {report_path} (from {results})")
        return 0

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    runs: dict[str, dict[str, Any]] = {}
    for bench in chosen:
        run = run_benchmark(bench, args.quick, results)
        if run["result"] is not None:
            headline, tables = VIEWS[bench.name](run["result"])
            run["headline"], run["tables"] = headline, tables
        runs[bench.name] = run
    summary = {
        "benchmark": "all",
        "started_at": started_at,
        "seconds": round(time.monotonic() - started, 1),
        "quick": args.quick,
        "machine": machine(),
        "git": git_commit(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "benchmarks": runs,
    }
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(write_report(summary), encoding="utf-8")
    stored = {**summary, "benchmarks": {name: {k: v for k, v in run.items() if k != "tables"}
                                        for name, run in runs.items()}}
    stored["headline"] = {name: run.get("headline") for name, run in runs.items()}
    results.mkdir(parents=True, exist_ok=True)
    (results / "summary.json").write_text(json.dumps(stored, indent=1) + "\n", encoding="utf-8")
    failed = [name for name, run in runs.items() if not run["ok"]]
    for line in headline_lines(runs):
        print(line.replace("**", ""))
    print(f"report: {report_path}; failed: {', '.join(failed) or 'none'}")
    print(json.dumps({"benchmark": "all", "report": str(report_path), "quick": args.quick,
                      "seconds": summary["seconds"], "failed": failed, "headline": stored["headline"]}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
