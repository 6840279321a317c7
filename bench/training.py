"""Training benchmark: wall time and peak memory of `recs train` on the bundled sample, bundle sizes,
and the numpy user tower's latency (p50/p99 at batch 1 and 32).

    python -m bench.training [--data DIR] [--epochs N]

Prints a table and, as the last line, one JSON object. Training runs in a child
process so that its peak resident memory is measured on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BUDGET_SECONDS = 180.0
USER_TOWER_BUDGET_BYTES = 5 * 2**20
"""What the Lambda loads on a cold start besides the catalog: the user tower (every member of an ensemble)."""


def _percentiles(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples) * 1e3
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99))}


def user_tower_latency(bundle_dir: Path, repeats: int = 2000) -> dict[str, dict[str, float]]:
    from core.bundle import open_bundle

    bundle = open_bundle(bundle_dir)
    tower = bundle.user_tower
    rng = np.random.default_rng(0)
    ids = [m.movie_id for m in bundle.catalog]
    histories = [
        [(int(m), float(r)) for m, r in zip(rng.choice(ids, 30), rng.integers(1, 11, 30) / 2, strict=True)]
        for _ in range(32)
    ]
    out = {}
    for batch in (1, 32):
        chunk = histories[:batch]
        tower.encode_batch(chunk)  # warm
        samples = []
        for _ in range(repeats if batch == 1 else repeats // 4):
            start = time.perf_counter()
            tower.encode_batch(chunk)
            samples.append(time.perf_counter() - start)
        out[f"batch_{batch}"] = _percentiles(samples)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ml-latest-small")
    parser.add_argument("--epochs", type=int, default=None, help="override the default epoch budget")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bundle"
        cmd = [sys.executable, "-m", "recs", "train", "--data", args.data, "--out", str(out),
               "--report", str(Path(tmp) / "report"), "--json", "--quiet", "--no-baselines"]
        if args.epochs:
            cmd += ["--epochs", str(args.epochs)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            print(proc.stderr[-4000:], file=sys.stderr)
            return proc.returncode
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        manifest = json.loads((out / "manifest.json").read_text())
        sizes = {name: entry["bytes"] for name, entry in manifest["files"].items()}
        latency = user_tower_latency(out)

    result: dict[str, Any] = {
        "benchmark": "training",
        "dataset": summary["dataset"],
        "train_wall_seconds": round(wall, 1),
        "train_seconds_in_process": manifest["training"]["seconds"],
        "epochs_run": manifest["training"]["epochs_run"],
        "peak_rss_mib": round(peak_mib, 1),
        "budget_seconds": BUDGET_SECONDS,
        "within_budget": wall < BUDGET_SECONDS,
        "bundle_bytes": sizes,
        "user_tower_budget_bytes": USER_TOWER_BUDGET_BYTES,
        "user_tower_within_budget": sizes.get("user_tower.npz", 0) < USER_TOWER_BUDGET_BYTES,
        "members": len(manifest["training"].get("members") or []) or 1,
        "served_recall@10": summary["metrics"]["two-tower (served)"]["recall@10"],
        "user_tower_latency": latency,
        "cpus": os.cpu_count(),
    }
    rows = [
        ("training wall time (s, incl. TF import)", f"{wall:.1f}  (budget {BUDGET_SECONDS:.0f})"),
        ("epochs run", str(result["epochs_run"])),
        ("peak RSS of training (MiB)", f"{peak_mib:.0f}"),
        *[(f"bundle: {name} (KiB)", f"{size / 1024:.0f}") for name, size in sizes.items()],
        ("user tower within its budget", f"{'yes' if result['user_tower_within_budget'] else 'NO'} "
                                         f"({USER_TOWER_BUDGET_BYTES / 2**20:.0f} MiB; {result['members']} member(s))"),
        ("served recall@10", f"{result['served_recall@10']:.4f}"),
        *[(f"user tower {b} p50 / p99 (ms)", f"{v['p50_ms']:.3f} / {v['p99_ms']:.3f}") for b, v in latency.items()],
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
