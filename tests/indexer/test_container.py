"""The indexer's container image, checked without Docker (there is no daemon here).

The image is rebuilt as a directory: ``/app`` gets what the Dockerfile's COPY lines copy (minus
what .dockerignore excludes) and a separate directory gets only the distributions that
``indexer/requirements.txt`` pulls in (its dependency closure, linked from this virtualenv). The
entry point then runs with ``python -S`` (no site-packages, no editable install of this project)
and ``PYTHONPATH`` set to just those two directories: ``--help``, a full rebuild into the embedded
store and one into OpenSearch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.indexer.conftest import N_MOVIES
from tests.support.container_image import (
    ROOT,
    dependency_closure,
    dockerignore,
    ignored,
    instructions,
    link_site_packages,
    requirements,
    unprovided_imports,
)

DOCKERFILE = ROOT / "indexer" / "Dockerfile"
REQUIREMENTS = ROOT / "indexer" / "requirements.txt"


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> dict[str, Path]:
    """The image as two directories: the application (``/app``) and its site-packages."""
    root = tmp_path_factory.mktemp("image")
    app = root / "app"
    patterns = dockerignore()
    for word, args in instructions(DOCKERFILE):
        if word != "COPY":
            continue
        parts = [p for p in args.split() if not p.startswith("--")]
        src, dst = parts[0], parts[-1]
        if src.endswith("requirements.txt"):
            continue
        assert dst.startswith("/app/"), f"COPY {args}: the test lays out /app only"
        source = ROOT / src
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if path.is_file() and not ignored(relative, patterns):
                out = app / dst.removeprefix("/app/") / path.relative_to(source)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)
    site = root / "site-packages"
    link_site_packages(dependency_closure(requirements(REQUIREMENTS)), site)
    return {"app": app, "site": site}


def run_image(image, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    entrypoint = next(json.loads(a) for w, a in instructions(DOCKERFILE) if w == "ENTRYPOINT")
    assert entrypoint[0] == "python"
    command = [sys.executable, "-S", *entrypoint[1:], *args]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RECS_", "PYTHON", "AWS_"))}
    clean.update({"PYTHONPATH": f"{image['app']}{os.pathsep}{image['site']}", "HOME": str(image["app"])})
    clean.update(env or {})
    return subprocess.run(command, cwd=image["app"], env=clean, capture_output=True, text=True, timeout=120)


def run_python(image, code: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": f"{image['app']}{os.pathsep}{image['site']}"}
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=image["app"], env=env, capture_output=True,
                          text=True, timeout=60)


def test_dockerfile_shape():
    steps = instructions(DOCKERFILE)
    assert steps[0] == ("FROM", "python:3.12-slim")
    assert ("USER", "10001") in steps and any("useradd" in a for w, a in steps if w == "RUN")
    assert [w for w, _ in steps].index("USER") > max(i for i, (w, _) in enumerate(steps) if w in ("RUN", "COPY"))
    run = " ".join(a for w, a in steps if w == "RUN")
    assert "pip install --no-cache-dir -r /tmp/requirements.txt" in run
    assert steps[-1] == ("ENTRYPOINT", '["python", "-m", "indexer"]')
    patterns = dockerignore()
    for heavy in (".venv", "node_modules", "cdk.out", "artifacts", "data", "build", ".git"):
        assert ignored(heavy, patterns), heavy
    assert ignored("indexer/__pycache__/cli.cpython-311.pyc", patterns)
    assert not ignored("indexer/cli.py", patterns) and not ignored("core/bundle.py", patterns)


def test_requirements_are_the_index_extra_and_carry_no_tensorflow():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert sorted(str(r) for r in requirements(REQUIREMENTS)) == sorted(str(Requirement(r)) for r in extra["index"])
    closure = dependency_closure(requirements(REQUIREMENTS))
    assert {"numpy", "opensearch-py", "redis", "boto3"} <= closure
    assert not closure & {"tensorflow", "tensorflow-cpu", "pandas", "keras", "aws-lambda-powertools"}


def test_every_third_party_import_of_the_indexer_is_installed():
    assert unprovided_imports(("indexer", "core"), dependency_closure(requirements(REQUIREMENTS))) == {}


def test_the_entry_point_runs_from_the_image_layout(image):
    probe = run_image(image, "--help")
    assert probe.returncode == 0, probe.stderr
    assert "auto" in probe.stdout and "rebuild" in probe.stdout
    where = run_python(image, "import indexer.jobs, core.bundle, sys; "
                              "print(indexer.jobs.__file__); print(core.bundle.__file__); "
                              "print(sorted(m for m in ('tensorflow', 'pandas', 'training') if m in sys.modules))")
    assert where.returncode == 0, where.stderr
    jobs_file, bundle_file, heavy = where.stdout.splitlines()
    assert Path(jobs_file).is_relative_to(image["app"]) and Path(bundle_file).is_relative_to(image["app"])
    assert heavy == "[]"
    assert run_python(image, "import pandas").returncode != 0  # the layout really is isolated from this venv


def test_a_rebuild_into_the_embedded_store_runs_in_the_image(image, make_bundle, tmp_path):
    bundle = make_bundle("m1")
    done = run_image(image, "rebuild", env={"RECS_BUNDLE": str(bundle.path),
                                            "RECS_EMBEDDED_STORE": str(tmp_path / "store")})
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["documents"], summary["alias_before"], summary["generation"]) == (N_MOVIES, None, 1)
    assert all(json.loads(line)["logger"] == "recs.indexer" for line in done.stderr.splitlines())


@pytest.mark.opensearch
def test_a_rebuild_into_opensearch_runs_in_the_image(image, make_bundle, opensearch_url, unique_name):
    alias = unique_name("movies")
    done = run_image(image, "rebuild", "--bundle", str(make_bundle("m1").path), "--replicas", "0",
                     env={"RECS_OPENSEARCH_URL": opensearch_url, "RECS_OPENSEARCH_ALIAS": alias})
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["documents"] == N_MOVIES and summary["alias_after"].startswith(f"{alias}-m1-")
    assert summary["details"]["probes"] == 3
