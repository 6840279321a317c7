"""The Lambda asset: built once per session with the real pip (manylinux wheels for Python 3.12),
within the size budget, without TensorFlow/pandas/scipy, and able to serve under Python 3.12 with
nothing but the asset on its path."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from infra.errors import PackagingError
from infra.packaging import (
    BUDGET_BYTES,
    FORBIDDEN,
    build_lambda_asset,
    find_python312,
    forbidden_packages,
    platform_tags,
    read_report,
    tree_size,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lambda_asset(tmp_path_factory.mktemp("lambda") / "asset", arch="x86_64")


@pytest.mark.slow
def test_the_asset_fits_the_budget_and_holds_no_training_stack(asset: Path) -> None:
    report = read_report(asset)
    assert report["handler"] == "recommender.handler.lambda_handler"
    assert report["runtime"] == "python3.12"
    assert report["unzipped_bytes"] == tree_size(asset) - (asset / "recs-lambda-asset.json").stat().st_size
    assert report["unzipped_bytes"] < BUDGET_BYTES
    assert 0 < report["zipped_bytes"] < report["unzipped_bytes"]
    names = {p.name.lower() for p in asset.iterdir() if p.name != "recs-lambda-asset.json"}
    # the project's code in the asset is the kernel and the Lambda app: no local server, page or CLI
    assert {"core", "recommender"} <= names and not names & {"recs", "training", "indexer", "infra", "scaling"}
    assert not list(asset.rglob("web")) and not list(asset.rglob("synthetic.py")) and not list(asset.rglob("server.py"))
    for forbidden in (*FORBIDDEN, "boto3", "botocore", "grpc", "google"):
        assert not any(n == forbidden or n.startswith(forbidden + "-") for n in names), forbidden
    assert forbidden_packages(asset) == []
    assert (asset / "recommender" / "handler.py").is_file()
    for local_only in ("cli.py", "local_server.py", "packaging.py", "synthetic.py", "web"):
        assert not (asset / "recommender" / local_only).exists()
    assert not list(asset.rglob("tests")) and not list(asset.rglob("*.pyi"))
    assert {"numpy", "pydantic", "opensearchpy", "redis", "aws_lambda_powertools"} <= names


@pytest.mark.slow
def test_the_asset_serves_under_python_312_alone(asset: Path, bundle_dir: Path, tmp_path: Path) -> None:
    python312 = find_python312()
    assert python312, "a Python 3.12 interpreter is needed to compile and try the asset (pyenv has one here)"
    assert read_report(asset)["pyc_compiled"] is True
    assert (asset / "recommender" / "__pycache__").is_dir()
    script = textwrap.dedent(
        f"""
        import json, os, sys
        sys.path.insert(0, {str(asset)!r})
        os.environ.update(RECS_BUNDLE={str(bundle_dir)!r}, RECS_EMBEDDED_STORE={str(tmp_path / "store")!r},
                          AWS_LAMBDA_FUNCTION_NAME="recs-test", RECS_METRICS_NAMESPACE="RecsTest")
        from recommender.handler import lambda_handler
        event = json.load(open({str(ROOT / "tests" / "events" / "post_recommendations.json")!r}))
        response = lambda_handler(event, None)
        # the server adapters import and build their clients (no connection is made)
        from core.aws import opensearch_client
        from recommender.adapters.opensearch_index import OpenSearchIndex
        from recommender.adapters.redis_cache import RedisCache
        OpenSearchIndex(opensearch_client("http://127.0.0.1:9"), "movies")
        RedisCache("redis://127.0.0.1:9/0")
        import numpy
        print(json.dumps({{
            "status": response["statusCode"], "items": len(json.loads(response["body"])["items"]),
            "numpy": numpy.__file__, "version": list(sys.version_info[:2]),
            "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "pandas", "scipy", "training")),
        }}))
        """
    )
    result = subprocess.run([python312, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    emf = [json.loads(line) for line in lines if "_aws" in line]
    out = json.loads(lines[-1])
    assert out == {
        "status": 200, "items": 5, "numpy": str(asset / "numpy" / "__init__.pyc"), "version": [3, 12], "heavy": [],
    }
    # inside "Lambda", metrics went out as EMF on stdout
    assert emf and emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "RecsTest"
    assert "RequestLatency" in emf[0]


def test_platform_tags_cover_older_manylinux() -> None:
    tags = platform_tags("aarch64")
    assert tags[0] == "manylinux_2_28_aarch64"
    assert "manylinux_2_17_aarch64" in tags and "manylinux2014_aarch64" in tags
    with pytest.raises(PackagingError, match="architecture"):
        platform_tags("armv7")


def test_forbidden_packages_are_detected(tmp_path: Path) -> None:
    (tmp_path / "pandas").mkdir()
    (tmp_path / "scipy-1.14.0.dist-info").mkdir()
    (tmp_path / "numpy").mkdir()
    assert forbidden_packages(tmp_path) == ["pandas", "scipy"]


def test_recs_package_lambda_is_a_command() -> None:
    result = subprocess.run([sys.executable, "-m", "recs", "package", "lambda", "--help"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0
    assert "--arch" in result.stdout and "--out" in result.stdout
