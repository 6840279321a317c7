"""The retraining task's image, checked without Docker (no daemon here): the Dockerfile's shape, its requirements
(the `train` extra plus the `retrain` extra), that every third-party import of core/ and training/ is installed by
them, and that the entry point runs from the image's layout (only core/ and training/ in /app, only the required
distributions on the path)."""

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

DOCKERFILE = ROOT / "training" / "Dockerfile"
REQUIREMENTS = ROOT / "training" / "requirements.txt"


def test_dockerfile_shape() -> None:
    steps = instructions(DOCKERFILE)
    assert steps[0] == ("FROM", "python:3.12-slim")
    assert ("USER", "10001") in steps and any("useradd" in a for w, a in steps if w == "RUN")
    assert [w for w, _ in steps].index("USER") > max(i for i, (w, _) in enumerate(steps) if w in ("RUN", "COPY"))
    copies = [a.split() for w, a in steps if w == "COPY"]
    assert [c[0] for c in copies] == ["training/requirements.txt", "core/", "training/"]  # nothing else of the repo
    assert steps[-1] == ("ENTRYPOINT", '["python", "-m", "training.retrain_cli"]')
    assert ignored("data", dockerignore()) and ignored("artifacts", dockerignore())


def test_requirements_are_the_train_and_retrain_extras() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    wanted = [*extras["train"], *(r for r in extras["retrain"] if not r.startswith("serverless-movie-recs"))]
    assert sorted(str(r) for r in requirements(REQUIREMENTS)) == sorted(str(Requirement(r)) for r in wanted)
    assert "serverless-movie-recs[train]" in extras["retrain"]


def test_every_third_party_import_of_core_and_training_is_installed() -> None:
    assert unprovided_imports(("core", "training"), dependency_closure(requirements(REQUIREMENTS))) == {}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("retrain-image")
    app = root / "app"
    patterns = dockerignore()
    for package in ("core", "training"):
        for path in sorted((ROOT / package).rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if path.is_file() and not ignored(relative, patterns):
                out = app / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)
    site = root / "site-packages"
    link_site_packages(dependency_closure(requirements(REQUIREMENTS)), site)
    return {"app": app, "site": site}


def test_the_entry_point_runs_from_the_image_layout(image: dict[str, Path]) -> None:
    entrypoint = json.loads(instructions(DOCKERFILE)[-1][1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECS_", "PYTHON", "AWS_"))}
    env["PYTHONPATH"] = f"{image['app']}{os.pathsep}{image['site']}"
    done = subprocess.run([sys.executable, "-S", *entrypoint[1:], "--help"], cwd=image["app"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--bundle-root" in done.stdout and "exit status: 0 published, 3 held back" in done.stdout
    code = ("import training.retrain, sys; print(training.retrain.__file__); "
            "print(sorted(m for m in ('indexer', 'recommender', 'recs') if m in sys.modules))")
    probe = subprocess.run([sys.executable, "-S", "-c", code], cwd=image["app"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    where, apps = probe.stdout.splitlines()
    assert Path(where).is_relative_to(image["app"]) and apps == "[]"
