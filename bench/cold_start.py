"""Cold-start benchmark: ``python -m bench.cold_start [--runs 7] [--asset build/lambda] [--bundle DIR]``.

Side by side, in one run, each measured in fresh processes with a warm file cache (one unmeasured
run of each first), the runs of the cases interleaved (case A, B, C, A, B, C ...) so that a change
of load on the machine touches every case alike:

* **bare numpy**: Python 3.12 with only the Lambda asset on its path (``-I -S``) doing ``import
  numpy`` and nothing else: the reference of the ratio (a numpy handler cannot start faster).
* **numpy handler**: the same interpreter and path imports ``recommender.handler``, loads the bundle
  (hash checks included) and answers one stored API Gateway event
  (``tests/events/post_recommendations.json``) on the embedded index. Timed from process spawn to
  the answer (the interpreter's exit is not counted: a Lambda environment stays alive), inside the
  process (import; first request), and as the process's CPU time up to the answer (less sensitive
  than wall time to other load on the machine).
* **numpy handler + X-Ray**: the same with tracing on as in Lambda (``LAMBDA_TASK_ROOT`` set).
* **numpy handler + the deployed clients' imports**: the same, also importing what the deployed
  function's first request adds (no network): boto3 with an S3 and a Secrets Manager client (the
  bundle root in S3, the Redis token), opensearch-py with SigV4, redis-py.
* **import floor**: numpy, Powertools' ``APIGatewayRestResolver`` with validation (its event-handler
  package, the OpenAPI validation middleware) and one pydantic model validated: what any handler of
  this design pays before a line of the project runs.
* **user towers** (``--towers pooling,attention,gru``; ``--towers ''`` skips them): the numpy handler
  case with a bundle of each user-tower type at the trained model's sizes (``TrainConfig``'s defaults,
  random weights, the same 9,742-movie catalog and item tower: ``bench.latency.write_tower_bundles``),
  interleaved with the cases above; medians and ratios over the pooling tower's.
* **TensorFlow SavedModel**: the same user tower rebuilt as a TensorFlow graph from the bundle's
  numpy weights (checked equal to the numpy tower), saved as a SavedModel; a fresh process imports
  TensorFlow, loads it and runs one inference. No handler, no k-NN: a lower bound for a function
  that kept TensorFlow in the serving path.

Every Python 3.12 case has boto3 and botocore after the asset on its path, as the Lambda runtime
provides them (Powertools imports botocore when it is there; the X-Ray SDK needs it). The **ratio** is the numpy
handler's median spawn-to-answer over the bare numpy process's, both from this run (target: at most
1.5x). The **import breakdown** runs the handler case ``--import-runs`` more times under ``python
-X importtime`` (which slows imports down: read it for proportions): the top modules by cumulative
import time (nested: they overlap) and the import time of each group of packages (self times, which
add up), also with each standard-library module counted for the group that imported it first.

The Lambda asset is built with ``infra.packaging`` when ``--asset`` does not exist. The bundle is
``artifacts/bundle`` when present, else a synthetic one with 9,742 movies (the size of MovieLens
ml-latest-small). Budget: the numpy handler under 300 ms (median, spawn to answer).

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
RATIO_TARGET = 1.5
"""The numpy handler's cold start over a bare ``import numpy`` process, at most."""
TOP_IMPORTS = 15
GROUPS = {
    "numpy": ("numpy",),
    "Powertools": ("aws_lambda_powertools", "jmespath"),
    "pydantic": ("pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions"),
    "X-Ray SDK, botocore": ("aws_xray_sdk", "wrapt", "botocore", "boto3", "s3transfer", "dateutil", "urllib3",
                            "six"),
    "the project (recommender, core)": ("recommender", "core"),
}
"""Import-time groups of the breakdown (top-level package names); the standard library and the rest are their own."""

NUMPY_CHILD = """
import time
t0 = time.perf_counter()
import json, os, sys
sys.path.insert(0, os.environ["BENCH_ASSET"])
extra = os.environ.get("BENCH_RUNTIME")
if extra:
    sys.path.append(extra)
from recommender.handler import lambda_handler
if os.environ.get("BENCH_DEPLOYED_CLIENTS"):
    # what the deployed function's first request adds (no network): boto3 with its S3 and Secrets Manager clients
    # (the bundle root in S3, the Redis token), opensearch-py with SigV4, redis-py
    import boto3, opensearchpy, redis
    from opensearchpy import Urllib3AWSV4SignerAuth
    boto3.client("s3", region_name="eu-west-1")
    boto3.client("secretsmanager", region_name="eu-west-1")
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

IMPORTS_ONLY_CHILD = """
import time
t0 = time.perf_counter()
import json, os, sys
sys.path.insert(0, os.environ["BENCH_ASSET"])
extra = os.environ.get("BENCH_RUNTIME")
if extra:
    sys.path.append(extra)
{imports}
t1 = time.perf_counter()
answered_at = time.time()
import resource
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"import_ms": (t1 - t0) * 1e3, "first_request_ms": 0.0, "answered_at": answered_at,
                  "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1e3}}), flush=True)
"""
"""A child that only imports (``{imports}``): timed and reported like the handler's child, with no request."""

BARE_NUMPY_CHILD = IMPORTS_ONLY_CHILD.format(imports="import numpy")

FLOOR_CHILD = IMPORTS_ONLY_CHILD.format(imports="""import numpy
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from pydantic import BaseModel
app = APIGatewayRestResolver(enable_validation=True)
class Body(BaseModel):
    k: int
Body.model_validate({"k": 1})""")

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
    """boto3 and botocore for Python 3.12, as the Lambda runtime provides them (Powertools and the X-Ray SDK import
    botocore; the deployed function's S3 bundle and Redis token need boto3)."""
    if (cache / "botocore").is_dir() and (cache / "boto3").is_dir():
        return cache
    from infra.packaging import platform_tags

    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(cache),
           "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
    for tag in platform_tags("x86_64"):
        cmd += ["--platform", tag]
    subprocess.run([*cmd, "boto3"], check=True, capture_output=True)
    return cache


def build_savedmodel(bundle_dir: Path, out: Path) -> tuple[Path, Path, float]:
    """The bundle's user tower as a TensorFlow SavedModel; returns (model dir, inputs .npz, max |tf - numpy|)."""
    import tensorflow as tf

    from core.bundle import open_bundle
    from core.features import history_inputs
    from core.towers import EnsembleUserTower

    tower = open_bundle(bundle_dir).user_tower
    members = list(tower.members) if isinstance(tower, EnsembleUserTower) else [tower]
    if any(m.tower_type != "pooling" for m in members):
        raise SystemExit("the TensorFlow comparison rebuilds pooling user towers only (--skip-tensorflow)")
    weights = [{name: tf.constant(value) for name, value in m.arrays().items() if name not in ("movie_ids",
                                                                                               "tower_type")}
               for m in members]

    class UserTowerModule(tf.Module):  # the forward pass of core.towers.UserTower (each member's), in TensorFlow
        def __init__(self) -> None:
            super().__init__()
            self.w = [{k: tf.Variable(v, trainable=False, name=f"m{i}_{k}") for k, v in member.items()}
                      for i, member in enumerate(weights)]

        @tf.function(input_signature=[tf.TensorSpec([None, tower.history_length], tf.int32)] * 2)
        def serve(self, slots: tf.Tensor, buckets: tf.Tensor) -> tf.Tensor:
            outputs = [self.member(w, slots, buckets) for w in self.w]  # side by side, popularity weights summed
            return tf.concat([o[:, :-1] for o in outputs] + [tf.add_n([o[:, -1:] for o in outputs])], axis=1)

        def member(self, w: dict[str, tf.Variable], slots: tf.Tensor, buckets: tf.Tensor) -> tf.Tensor:
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


def summarise(walls: list[float], inner: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "median_ms": statistics.median(walls),
        "runs_ms": [round(w, 1) for w in walls],
        "import_median_ms": statistics.median(d["import_ms"] for d in inner),
        "first_request_median_ms": statistics.median(d["first_request_ms"] for d in inner),
        "cpu_median_ms": statistics.median(d["cpu_ms"] for d in inner),
        "heavy_modules": inner[-1].get("heavy", []),
    }


def measure(cmd: list[str], env: dict[str, str], runs: int) -> dict[str, Any]:
    """``runs`` fresh processes of one case (after one unmeasured run that warms the file cache)."""
    return measure_interleaved({"case": (cmd, env)}, runs)["case"]


def measure_interleaved(cases: dict[str, tuple[list[str], dict[str, str]]], runs: int) -> dict[str, dict[str, Any]]:
    """Every case ``runs`` times, in turns (A, B, C, A, B, C ...), after one unmeasured turn that warms the file
    cache: a change of load on the machine then touches every case alike, so their ratios hold."""
    walls: dict[str, list[float]] = {name: [] for name in cases}
    inner: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
    for turn in range(runs + 1):
        for name, (cmd, env) in cases.items():
            wall, data = run_child(cmd, env)
            if turn:
                walls[name].append(wall)
                inner[name].append(data)
    return {name: summarise(walls[name], inner[name]) for name in cases}


STDLIB = "standard library"


def parse_importtime(stderr: str) -> list[tuple[str, int, int, int]]:
    """``(module, self µs, cumulative µs, depth)`` of each ``-X importtime`` line, in the order printed (a module
    after the ones it imported; depth 0 is imported by the script itself)."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, self_us, cumulative_us, name = line.replace("import time:", "|", 1).split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((name.strip(), int(self_us), int(cumulative_us), depth))
    return rows


def group_of(module: str) -> str:
    top = module.split(".")[0]
    for group, packages in GROUPS.items():
        if top in packages:
            return group
    if top in sys.stdlib_module_names or top.lstrip("_") in sys.stdlib_module_names:
        return STDLIB
    return "other"


def owners(rows: list[tuple[str, int, int, int]]) -> list[str]:
    """For each row, its group, a standard-library module counting for the group that first imported it (the
    nearest importer that is not the standard library; the script's own imports stay the standard library's)."""
    found: list[str] = [""] * len(rows)
    stack: list[tuple[int, str]] = []  # (depth, owner) of the importers of the row at hand
    for i in range(len(rows) - 1, -1, -1):  # parents are printed after their children
        name, _, _, depth = rows[i]
        while stack and stack[-1][0] >= depth:
            stack.pop()
        own = group_of(name)
        owner = own if own != STDLIB else next((o for _, o in reversed(stack) if o != STDLIB), STDLIB)
        found[i] = owner
        stack.append((depth, owner))
    return found


def import_breakdown(cmd: list[str], env: dict[str, str], runs: int) -> dict[str, Any]:
    """The handler case under ``-X importtime``, ``runs`` times: per module the median self and cumulative time;
    the top modules by cumulative time, and the self times summed per group, the standard library counted with
    the group that imported it first (medians over the runs)."""
    per_module: dict[str, list[tuple[int, int]]] = {}
    per_owner: dict[str, list[float]] = {}
    for run in range(runs):
        result = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], env=env, capture_output=True, text=True,
                                timeout=300, check=True)
        rows = parse_importtime(result.stderr)
        sums: dict[str, float] = {}
        for (name, self_us, cumulative_us, _), owner in zip(rows, owners(rows), strict=True):
            per_module.setdefault(name, []).append((self_us, cumulative_us))
            sums[owner] = sums.get(owner, 0.0) + self_us / 1e3
        for owner, ms in sums.items():
            per_owner.setdefault(owner, [0.0] * run).append(ms)
        for values in per_owner.values():
            if len(values) < run + 1:
                values.append(0.0)
    medians: dict[str, tuple[float, float]] = {
        name: (float(statistics.median(s for s, _ in v)), float(statistics.median(c for _, c in v)))
        for name, v in per_module.items()
    }
    top = sorted(medians.items(), key=lambda item: -item[1][1])[:TOP_IMPORTS]
    groups: dict[str, float] = {}
    for name, (median_self_us, _) in medians.items():
        groups[group_of(name)] = groups.get(group_of(name), 0.0) + median_self_us / 1e3
    by_importer = {owner: float(statistics.median(values)) for owner, values in per_owner.items()}
    return {
        "runs": runs,
        "modules": len(medians),
        "total_ms": round(sum(groups.values()), 1),
        "top_cumulative": [{"module": name, "cumulative_ms": round(c / 1e3, 1), "self_ms": round(s / 1e3, 1)}
                           for name, (s, c) in top],
        "by_group_ms": {g: round(ms, 1) for g, ms in sorted(groups.items(), key=lambda item: -item[1])},
        "by_importer_ms": {g: round(ms, 1) for g, ms in sorted(by_importer.items(), key=lambda item: -item[1])},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--asset", default=str(ROOT / "build" / "lambda"))
    parser.add_argument("--rebuild", action="store_true", help="rebuild the Lambda asset first")
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--skip-tensorflow", action="store_true")
    parser.add_argument("--import-runs", type=int, default=3, help="runs under -X importtime for the breakdown")
    parser.add_argument("--towers", default="pooling,attention,gru,ensemble",
                        help="user-tower types whose handler cold start is measured side by side ('' to skip)")
    args = parser.parse_args(argv)
    towers = [t for t in args.towers.split(",") if t]

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
        runtime = ensure_runtime_botocore(ROOT / "build" / "bench-runtime-botocore")
        base_env["BENCH_RUNTIME"] = str(runtime)  # botocore after the asset, as the Lambda runtime has it
        numpy_cmd = [python312, "-I", "-S", "-c", NUMPY_CHILD]
        traced_env = {
            **base_env, "LAMBDA_TASK_ROOT": str(asset),
            "_X_AMZN_TRACE_ID": "Root=1-6741a3f0-1c2d3e4f5a6b7c8d9e0f1a2b;Parent=53995c3f42cd8ad8;Sampled=1",
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000", "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        }
        tower_bundles: dict[str, Path] = {}
        if towers:
            from bench.latency import write_tower_bundles

            _say(f"writing one bundle per user tower ({', '.join(towers)}), 9,742 movies ...")
            tower_bundles = write_tower_bundles(work, towers, 9742)
        _say(f"measuring bare numpy, the import floor, the numpy handler (plain, with X-Ray, with the deployed "
             f"clients' imports, per user tower), {args.runs} runs each, interleaved ...")
        measured = measure_interleaved({
            "bare_numpy": ([python312, "-I", "-S", "-c", BARE_NUMPY_CHILD], base_env),
            "import_floor": ([python312, "-I", "-S", "-c", FLOOR_CHILD], base_env),
            "numpy_handler": (numpy_cmd, base_env),
            "numpy_handler_xray": (numpy_cmd, traced_env),
            "numpy_handler_deployed_clients": (numpy_cmd, {
                **base_env, "BENCH_DEPLOYED_CLIENTS": "1", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "b",
            }),
            **{f"tower_{kind}": (numpy_cmd, {**base_env, "RECS_BUNDLE": str(path)})
               for kind, path in tower_bundles.items()},
        }, args.runs)
        tower_rows = {kind: measured[f"tower_{kind}"] for kind in tower_bundles}
        bare, floor = measured["bare_numpy"], measured["import_floor"]
        numpy_plain, numpy_traced = measured["numpy_handler"], measured["numpy_handler_xray"]
        deployed = measured["numpy_handler_deployed_clients"]
        _say(f"breaking the handler's imports down ({args.import_runs} runs under -X importtime) ...")
        imports = import_breakdown(numpy_cmd, base_env, args.import_runs)
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
    rows = [("bare numpy (import numpy, py3.12)", bare),
            ("import floor (numpy+Powertools+pydantic)", floor),
            ("numpy handler (Lambda asset, py3.12)", numpy_plain),
            ("numpy handler + X-Ray tracer", numpy_traced),
            ("numpy handler + deployed clients' imports", deployed)]
    if tf_result:
        rows.append((f"TensorFlow SavedModel (py{sys.version_info[0]}.{sys.version_info[1]})", tf_result))
    load = os.getloadavg()
    print(f"{'cold start, fresh process (medians)':42} {'to answer':>10} {'import':>9} {'1st req':>9} {'CPU':>9}")
    for name, r in rows:
        print(f"{name:42} {r['median_ms']:8.0f}ms {r['import_median_ms']:7.0f}ms {r['first_request_median_ms']:7.1f}ms "
              f"{r['cpu_median_ms']:7.0f}ms")
    print(f"load average during the run: {load[0]:.1f} on {os.cpu_count()} CPUs (wall times grow with it; CPU less)")
    cold_ratio = numpy_plain["median_ms"] / bare["median_ms"]
    cpu_ratio = numpy_plain["cpu_median_ms"] / bare["cpu_median_ms"]
    floor_ratio = floor["median_ms"] / bare["median_ms"]
    ratio_met = cold_ratio <= RATIO_TARGET
    print(f"cold start / bare numpy process: {cold_ratio:.2f}x (CPU {cpu_ratio:.2f}x; target {RATIO_TARGET:.1f}x: "
          f"{'met' if ratio_met else 'MISSED'}); the import floor alone: {floor_ratio:.2f}x")
    ratio = tf_result["median_ms"] / numpy_plain["median_ms"] if tf_result else None
    if ratio:
        print(f"TensorFlow / numpy: {ratio:.1f}x   (TF graph vs numpy tower max |diff| = {parity:.2e})")
    within = numpy_plain["median_ms"] < BUDGET_MS
    print(f"budget {BUDGET_MS:.0f} ms: {'met' if within else 'MISSED'}; asset "
          f"{report['unzipped_bytes'] / 2**20:.1f} MB unzipped, {report['zipped_bytes'] / 2**20:.1f} MB zipped; "
          f"bundle {bundle}")
    if tower_rows:
        print("user towers: numpy handler cold start with each tower type (real sizes, 9,742 movies; medians):")
        print(f"  {'tower':<10} {'to answer':>10} {'1st req':>9} {'CPU':>8} {'answer/pool':>12} {'CPU/pool':>9}")
        ref = tower_rows.get("pooling")
        for kind, r in tower_rows.items():
            ratio = r["median_ms"] / ref["median_ms"] if ref else float("nan")
            cpu = r["cpu_median_ms"] / ref["cpu_median_ms"] if ref else float("nan")
            r["over_pooling"], r["cpu_over_pooling"] = ratio, cpu
            print(f"  {kind:<10} {r['median_ms']:8.0f}ms {r['first_request_median_ms']:7.1f}ms "
                  f"{r['cpu_median_ms']:6.0f}ms {ratio:11.2f}x {cpu:8.2f}x")
    print(f"imports of the numpy handler, -X importtime ({imports['runs']} runs, medians; it slows imports down, "
          f"read proportions): {imports['modules']} modules, {imports['total_ms']:.0f} ms")
    print(f"  {'by group':36} {'self':>10} {'with the standard library it imports first':>46}")
    for group, ms in imports["by_group_ms"].items():
        pulled = imports["by_importer_ms"].get(group, 0.0) if group != STDLIB else imports["by_importer_ms"].get(
            STDLIB, 0.0)
        print(f"  {group:36} {ms:7.1f} ms {100 * ms / imports['total_ms']:4.0f}%   {pulled:7.1f} ms "
              f"{100 * pulled / imports['total_ms']:4.0f}%" + ("  (the script's own)" if group == STDLIB else ""))
    print(f"  top {TOP_IMPORTS} by cumulative time (nested, they overlap):")
    for row in imports["top_cumulative"]:
        print(f"  {row['module']:58} {row['cumulative_ms']:7.1f} ms  (self {row['self_ms']:.1f})")
    print(json.dumps({
        "benchmark": "cold_start",
        "runs": args.runs,
        "bare_numpy": bare,
        "import_floor": floor,
        "numpy_handler": numpy_plain,
        "numpy_handler_xray": numpy_traced,
        "numpy_handler_deployed_clients": deployed,
        "user_towers": tower_rows,
        "tensorflow_savedmodel": tf_result,
        "tensorflow_over_numpy": ratio,
        "tf_numpy_max_abs_diff": parity,
        "cold_over_bare_numpy": cold_ratio,
        "cold_over_bare_numpy_cpu": cpu_ratio,
        "floor_over_bare_numpy": floor_ratio,
        "ratio_target": RATIO_TARGET,
        "ratio_met": ratio_met,
        "imports": imports,
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
