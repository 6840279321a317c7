"""Cold-start benchmark: ``python -m bench.cold_start [--runs 7] [--asset build/lambda] [--bundle DIR]``.

Side by side, in one run, each measured in fresh processes with a warm file cache (one unmeasured
run first):

* **numpy handler**: Python 3.12 with *only the Lambda asset* on its path (``-I -S``, no site
  packages) imports ``recommender.handler``, loads the bundle (hash checks included) and answers one
  stored API Gateway event (``tests/events/post_recommendations.json``) on the embedded index.
  Timed from process spawn to the answer (the interpreter's exit is not counted: a Lambda
  environment stays alive), inside the process (import; first request), and as the process's CPU
  time up to the answer (less sensitive than wall time to other load on the machine).
* **numpy handler + X-Ray**: the same with tracing on as in Lambda (``LAMBDA_TASK_ROOT`` set), with
  botocore on the path the way the Lambda runtime provides it (the X-Ray SDK imports it).
* **TensorFlow SavedModel**: the same user tower rebuilt as a TensorFlow graph from the bundle's
  numpy weights (checked equal to the numpy tower), saved as a SavedModel; a fresh process imports
  TensorFlow, loads it and runs one inference. No handler, no k-NN: a lower bound for a function
  that kept TensorFlow in the serving path.

The Lambda asset is built with ``infra.packaging`` when ``--asset`` does not exist. The
bundle is ``artifacts/bundle`` when present, else a synthetic one with 9,742 movies (the size of
MovieLens ml-latest-small). Budget: the numpy handler under 300 ms (median, spawn to answer).

Prints a table, then the JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EVENT = ROOT / "tests" / "events" / "post_recommendations.json"
BUDGET_MS = 300.0

NUMPY_CHILD = """
import time
t0 = time.perf_counter()
import json, os, sys
sys.path.insert(0, os.environ["BENCH_ASSET"])
extra = os.environ.get("BENCH_RUNTIME")
if extra:
    sys.path.append(extra)
from recommender.handler import lambda_handler
t1 = time.perf_counter()
with open(os.environ["BENCH_EVENT"]) as fh:
    event = json.load(fh)
response = lambda_handler(event, None)
t2 = time.perf_counter()
if response["statusCode"] != 200:
    raise SystemExit(response["body"])
answered_at = time.time()
import resource
usage = resource.getrusage(resource.RUSAGE_SELF)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "pandas", "scipy", "training"))
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "first_request_ms": (t2 - t1) * 1e3, "heavy": heavy,
                  "answered_at": answered_at, "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1e3}), flush=True)
"""

TF_CHILD = """
import time
t0 = time.perf_counter()
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf
t1 = time.perf_counter()
model = tf.saved_model.load(os.environ["BENCH_SAVEDMODEL"])
inputs = np.load(os.environ["BENCH_INPUTS"])
t2 = time.perf_counter()
out = model.serve(tf.constant(inputs["slots"]), tf.constant(inputs["buckets"])).numpy()
t3 = time.perf_counter()
answered_at = time.time()
import resource
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "load_ms": (t2 - t1) * 1e3, "first_request_ms": (t3 - t1) * 1e3,
                  "checksum": float(out.sum()), "answered_at": answered_at,
                  "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1e3}), flush=True)
"""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_asset(asset: Path, rebuild: bool) -> Path:
    from infra.packaging import build_lambda_asset

    if rebuild or not (asset / "recommender" / "handler.py").is_file():
        _say(f"building the Lambda asset in {asset} ...")
        build_lambda_asset(asset)
    return asset


def ensure_bundle(given: str | None, workdir: Path) -> Path:
    if given:
        return Path(given)
    real = ROOT / "artifacts" / "bundle"
    if (real / "manifest.json").is_file():
        return real
    from recs.local.synthetic import write_synthetic_bundle

    path = workdir / "bundle"
    _say("no artifacts/bundle: writing a synthetic bundle with 9,742 movies ...")
    write_synthetic_bundle(path, n_movies=9742, dimension=65, history_length=50, seed=1)
    return path


def ensure_runtime_botocore(cache: Path) -> Path:
    """botocore for Python 3.12, as the Lambda runtime provides it (the X-Ray SDK imports it)."""
    if (cache / "botocore").is_dir():
        return cache
    from infra.packaging import platform_tags

    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(cache),
           "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
    for tag in platform_tags("x86_64"):
        cmd += ["--platform", tag]
    subprocess.run([*cmd, "botocore"], check=True, capture_output=True)
    return cache


def build_savedmodel(bundle_dir: Path, out: Path) -> tuple[Path, Path, float]:
    """The bundle's user tower as a TensorFlow SavedModel; returns (model dir, inputs .npz, max |tf - numpy|)."""
    import tensorflow as tf

    from core.bundle import open_bundle
    from core.features import history_inputs

    tower = open_bundle(bundle_dir).user_tower
    weights = {name: tf.constant(value) for name, value in tower.arrays().items() if name != "movie_ids"}

    class UserTowerModule(tf.Module):  # the forward pass of core.towers.UserTower, in TensorFlow
        def __init__(self) -> None:
            super().__init__()
            self.w = {k: tf.Variable(v, trainable=False, name=k) for k, v in weights.items()}

        @tf.function(input_signature=[tf.TensorSpec([None, tower.history_length], tf.int32)] * 2)
        def serve(self, slots: tf.Tensor, buckets: tf.Tensor) -> tf.Tensor:
            w = self.w
            mask = tf.cast(slots > 0, tf.float32)
            emb = tf.gather(w["history_embedding"], slots)
            logits = w["position_logit"][None, :] + tf.gather(w["rating_logit"], buckets)
            weight = mask * tf.math.softplus(logits)
            weighted = tf.einsum("bh,bhd->bd", weight, emb) / (tf.reduce_sum(weight, 1, keepdims=True) + 1e-6)
            mean = tf.einsum("bh,bhd->bd", mask, emb) / (tf.reduce_sum(mask, 1, keepdims=True) + 1e-6)
            x = tf.concat([weighted, mean], axis=1)
            hidden = tf.nn.relu(x @ w["dense1_kernel"] + w["dense1_bias"])
            u = tf.math.l2_normalize(hidden @ w["dense2_kernel"] + w["dense2_bias"], axis=-1, epsilon=1e-12)
            pop = tf.fill([tf.shape(u)[0], 1], w["popularity_weight"])
            return tf.concat([u * w["inverse_temperature"], pop], axis=1)

    module = UserTowerModule()
    model_dir = out / "savedmodel"
    tf.saved_model.save(module, str(model_dir))
    event = json.loads(EVENT.read_text())
    history = [(h["movie_id"], h.get("rating")) for h in json.loads(event["body"])["history"]]
    slots, buckets = history_inputs(tower.movie_ids, [history], tower.history_length)
    inputs = out / "inputs.npz"
    np.savez(inputs, slots=slots.astype(np.int32), buckets=buckets.astype(np.int32))
    tf_out = module.serve(tf.constant(slots, tf.int32), tf.constant(buckets, tf.int32)).numpy()
    diff = float(np.max(np.abs(tf_out - tower.forward(slots, buckets))))
    return model_dir, inputs, diff


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """Run one fresh process; returns milliseconds from spawn to the answer, and what it reported.

    The process's exit (interpreter teardown) is not counted: a Lambda environment stays alive.
    """
    spawned_at = time.time()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    line = [x for x in result.stdout.splitlines() if x.startswith("{") and "import_ms" in x][-1]
    data = json.loads(line)
    return (float(data["answered_at"]) - spawned_at) * 1e3, data


def measure(cmd: list[str], env: dict[str, str], runs: int) -> dict[str, Any]:
    run_child(cmd, env)  # warm the file cache
    walls, inner = [], []
    for _ in range(runs):
        wall, data = run_child(cmd, env)
        walls.append(wall)
        inner.append(data)
    return {
        "median_ms": statistics.median(walls),
        "runs_ms": [round(w, 1) for w in walls],
        "import_median_ms": statistics.median(d["import_ms"] for d in inner),
        "first_request_median_ms": statistics.median(d["first_request_ms"] for d in inner),
        "cpu_median_ms": statistics.median(d["cpu_ms"] for d in inner),
        "heavy_modules": inner[-1].get("heavy", []),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--asset", default=str(ROOT / "build" / "lambda"))
    parser.add_argument("--rebuild", action="store_true", help="rebuild the Lambda asset first")
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--skip-tensorflow", action="store_true")
    args = parser.parse_args(argv)

    from infra.packaging import RUNTIME_ENVIRONMENT, find_python312, read_report

    python312 = find_python312()
    if python312 is None:
        print("no Python 3.12 interpreter found (set RECS_PYTHON312)", file=sys.stderr)
        return 2
    asset = ensure_asset(Path(args.asset).resolve(), args.rebuild)
    work = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    try:
        bundle = ensure_bundle(args.bundle, work)
        base_env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "BENCH_ASSET": str(asset),
            "BENCH_EVENT": str(EVENT),
            "RECS_BUNDLE": str(bundle),
            "RECS_EMBEDDED_STORE": str(work / "no-store"),
            "AWS_LAMBDA_FUNCTION_NAME": "recs-bench",
            "AWS_REGION": "eu-west-1",
            **RUNTIME_ENVIRONMENT,  # the function's own variables (infra)
        }
        numpy_cmd = [python312, "-I", "-S", "-c", NUMPY_CHILD]
        _say("measuring the numpy handler ...")
        numpy_plain = measure(numpy_cmd, base_env, args.runs)
        runtime = ensure_runtime_botocore(ROOT / "build" / "bench-runtime-botocore")
        traced_env = {
            **base_env, "BENCH_RUNTIME": str(runtime), "LAMBDA_TASK_ROOT": str(asset),
            "_X_AMZN_TRACE_ID": "Root=1-6741a3f0-1c2d3e4f5a6b7c8d9e0f1a2b;Parent=53995c3f42cd8ad8;Sampled=1",
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000", "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        }
        _say("measuring the numpy handler with X-Ray tracing ...")
        numpy_traced = measure(numpy_cmd, traced_env, args.runs)
        tf_result: dict[str, Any] | None = None
        parity = None
        if not args.skip_tensorflow:
            _say("building the TensorFlow SavedModel of the same user tower ...")
            model_dir, inputs, parity = build_savedmodel(bundle, work)
            tf_env = {**os.environ, "BENCH_SAVEDMODEL": str(model_dir), "BENCH_INPUTS": str(inputs),
                      "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
            _say("measuring TensorFlow ...")
            tf_result = measure([sys.executable, "-c", TF_CHILD], tf_env, max(3, args.runs // 2))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report = read_report(asset)
    rows = [("numpy handler (Lambda asset, py3.12)", numpy_plain),
            ("numpy handler + X-Ray tracer", numpy_traced)]
    if tf_result:
        rows.append((f"TensorFlow SavedModel (py{sys.version_info[0]}.{sys.version_info[1]})", tf_result))
    load = os.getloadavg()
    print(f"{'cold start, fresh process (medians)':40} {'to answer':>10} {'import':>9} {'1st req':>9} {'CPU':>9}")
    for name, r in rows:
        print(f"{name:40} {r['median_ms']:8.0f}ms {r['import_median_ms']:7.0f}ms {r['first_request_median_ms']:7.1f}ms "
              f"{r['cpu_median_ms']:7.0f}ms")
    print(f"load average during the run: {load[0]:.1f} on {os.cpu_count()} CPUs (wall times grow with it; CPU less)")
    ratio = tf_result["median_ms"] / numpy_plain["median_ms"] if tf_result else None
    if ratio:
        print(f"TensorFlow / numpy: {ratio:.1f}x   (TF graph vs numpy tower max |diff| = {parity:.2e})")
    within = numpy_plain["median_ms"] < BUDGET_MS
    print(f"budget {BUDGET_MS:.0f} ms: {'met' if within else 'MISSED'}; asset "
          f"{report['unzipped_bytes'] / 2**20:.1f} MB unzipped, {report['zipped_bytes'] / 2**20:.1f} MB zipped; "
          f"bundle {bundle}")
    print(json.dumps({
        "benchmark": "cold_start",
        "runs": args.runs,
        "numpy_handler": numpy_plain,
        "numpy_handler_xray": numpy_traced,
        "tensorflow_savedmodel": tf_result,
        "tensorflow_over_numpy": ratio,
        "tf_numpy_max_abs_diff": parity,
        "budget_ms": BUDGET_MS,
        "within_budget": within,
        "asset_unzipped_bytes": report["unzipped_bytes"],
        "asset_zipped_bytes": report["zipped_bytes"],
        "bundle": str(bundle),
        "python_serving": "3.12",
        "load_average_1m": load[0],
        "cpus": os.cpu_count(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
