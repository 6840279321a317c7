"""Build the Lambda asset directory without Docker: ``recs package lambda`` or
``python -m infra.packaging [--out build/lambda] [--arch x86_64|aarch64]``.

1. ``pip install --target`` the ``serve`` extra of ``pyproject.toml`` as binary wheels for
   CPython 3.12 on ``manylinux_2_28`` (and the older manylinux tags it accepts), x86_64 or aarch64.
2. Remove distributions Lambda does not need: ``boto3``/``botocore``/``s3transfer`` (the Python
   3.12 runtime ships them; they are 30 MB) and ``grpcio``/``protobuf``/``opensearch-protobufs``
   (opensearch-py's optional gRPC transport; the HTTP client never imports them).
3. Copy the ``core`` and ``recommender`` packages whole: they hold only what the Lambda runs (the
   local server, the try-it page and the synthetic bundles live in ``recs.local``).
4. Strip test suites, type stubs, C headers, ``__pycache__``, pip's install records, numpy's
   f2py, test-only extension modules and the subpackages it loads only on attribute access
   (random, polynomial, ma, testing, typing), pydantic's v1 namespace, opensearch-py's asyncio
   client (needs aiohttp, absent) and Powertools' Swagger UI assets (see ``_STRIP_TREES``).
5. Compile ``.pyc`` files with a Python 3.12 interpreter when one is found (``RECS_PYTHON312``,
   ``python3.12`` on PATH, pyenv): the project's packages keep their sources (unchecked-hash
   ``.pyc`` in ``__pycache__``, valid whatever modification times the zip gives the files);
   third-party packages become sourceless ``.pyc`` (see ``compile_pyc``).
6. Report the unzipped and zipped sizes, and write ``recs-lambda-asset.json`` beside the code.

The budget is 60 MB unzipped; ``build_lambda_asset`` raises ``PackagingError`` above it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from infra.errors import PackagingError

ROOT = Path(__file__).resolve().parent.parent
HANDLER = "recommender.handler.lambda_handler"
RUNTIME_ENVIRONMENT = {"OPENBLAS_NUM_THREADS": "1"}
"""Variables the function always gets (the CDK construct sets them): a function has one or two vCPUs
and multiplies one vector at a time, and starting OpenBLAS' thread pool at numpy's import costs the
cold start 10 to 100 ms (``bench.cold_start``); it must be set before numpy is imported, so it is the
environment's job, not the code's."""
PACKAGES = ("core", "recommender")
"""The project's packages in the asset: the kernel and the Lambda app, nothing else."""
PYTHON_VERSION = "3.12"
BUDGET_BYTES = 60 * 1024 * 1024
ARCHES = ("x86_64", "aarch64")
REPORT = "recs-lambda-asset.json"

RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
UNUSED = ("grpcio", "protobuf", "opensearch-protobufs")
FORBIDDEN = ("tensorflow", "pandas", "scipy", "keras", "torch", "training", "indexer", "recs", "infra")

_STRIP_DIRS = ("tests", "test", "__pycache__", "include", "f2py", "_pyinstaller")
_STRIP_SUFFIXES = (".pyi", ".pxd", ".h", ".c", ".cpp")
_STRIP_FILES = (
    "aws_lambda_powertools/event_handler/openapi/swagger_ui/swagger-ui-bundle.min.js",
    "aws_lambda_powertools/event_handler/openapi/swagger_ui/swagger-ui.min.css",
)
_STRIP_GLOBS = ("numpy/_core/_simd.*.so", "numpy/_core/_*_tests.*.so", "numpy/*.cython-*.pxd")
_STRIP_TREES = (
    # pydantic's v1 compatibility namespace, imported only by ``import pydantic.v1`` (nothing here).
    "pydantic/v1",
    # numpy subpackages numpy 2 loads only on attribute access (``np.random`` ...); the serving
    # path uses none of them. A test runs the asset under Python 3.12 to prove it still serves.
    "numpy/random",
    "numpy/polynomial",
    "numpy/ma",
    "numpy/testing",
    "numpy/typing",
    "numpy/doc",
)
_DIST_INFO_JUNK = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")


def serve_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The ``serve`` extra of the project."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    try:
        return list(data["project"]["optional-dependencies"]["serve"])
    except KeyError as exc:
        raise PackagingError(f"{pyproject}: no [project.optional-dependencies] serve") from exc


def platform_tags(arch: str) -> list[str]:
    """``manylinux_2_28_<arch>`` and every older manylinux tag it accepts (pip does not expand them)."""
    if arch not in ARCHES:
        raise PackagingError(f"unknown architecture {arch!r}; use one of {', '.join(ARCHES)}")
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(28, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


def find_python312() -> str | None:
    """A Python 3.12 interpreter to compile ``.pyc`` files with, or ``None``."""
    candidates: list[str] = []
    if os.environ.get("RECS_PYTHON312"):
        candidates.append(os.environ["RECS_PYTHON312"])
    if sys.version_info[:2] == (3, 12):
        candidates.append(sys.executable)
    on_path = shutil.which("python3.12")
    if on_path:
        candidates.append(on_path)
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True)
    candidates += ["/usr/bin/python3.12", "/usr/local/bin/python3.12"]
    for exe in candidates:
        try:
            out = subprocess.run(
                [exe, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
                capture_output=True, text=True, timeout=30, check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.split() == ["3", "12"]:
            return exe
    return None


def _say(verbose: bool, msg: str) -> None:
    if verbose:
        print(msg, flush=True)


def _pip_install(target: Path, requirements: Sequence[str], arch: str, verbose: bool) -> None:
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(target), "--only-binary=:all:", "--implementation", "cp",
        "--python-version", PYTHON_VERSION,
    ]
    for tag in platform_tags(arch):
        cmd += ["--platform", tag]
    cmd += list(requirements)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        noise = "WARNING: Location"
        err = "\n".join(line for line in result.stderr.splitlines() if not line.startswith(noise))
        raise PackagingError(f"pip could not install the serve dependencies for {arch}:\n{err[-3000:]}")
    _say(verbose, f"  installed {len(requirements)} requirements and their dependencies")


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _dist_infos(target: Path) -> dict[str, Path]:
    out = {}
    for info in target.glob("*.dist-info"):
        name = info.name[: -len(".dist-info")].rsplit("-", 1)[0]
        out[_normalise(name)] = info
    return out


def remove_distributions(target: Path, names: Iterable[str]) -> list[str]:
    """Delete installed distributions (every file their RECORD lists, then the dist-info)."""
    infos = _dist_infos(target)
    removed = []
    for name in names:
        info = infos.get(_normalise(name))
        if info is None:
            continue
        record = info / "RECORD"
        if record.is_file():
            for line in record.read_text(encoding="utf-8").splitlines():
                rel = line.split(",")[0]
                if not rel:
                    continue
                path = (target / rel).resolve()
                if target.resolve() in path.parents and path.is_file():
                    path.unlink()
        shutil.rmtree(info, ignore_errors=True)
        removed.append(name)
    # drop directories the removals emptied
    for folder in sorted((p for p in target.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


def _copy_packages(target: Path) -> None:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def strip(target: Path) -> int:
    """Remove files Lambda never reads; returns the bytes saved."""
    before = tree_size(target)
    for path in sorted(target.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if not path.exists():
            continue
        rel = path.relative_to(target)
        if path.is_dir() and path.name in _STRIP_DIRS and not rel.parts[0].endswith(".dist-info"):
            # keep a top-level package that happens to be called "include"/"test" (none today)
            if len(rel.parts) > 1:
                shutil.rmtree(path)
        elif path.is_file() and path.suffix in _STRIP_SUFFIXES:
            path.unlink()
    for rel_name in _STRIP_FILES:
        (target / rel_name).unlink(missing_ok=True)
    for rel_name in _STRIP_TREES:
        shutil.rmtree(target / rel_name, ignore_errors=True)
    for pattern in _STRIP_GLOBS:
        for path in target.glob(pattern):
            path.unlink()
    for info in target.glob("*.dist-info"):
        for junk in _DIST_INFO_JUNK:
            (info / junk).unlink(missing_ok=True)
    shutil.rmtree(target / "bin", ignore_errors=True)
    return before - tree_size(target)


def compile_pyc(target: Path, python312: str) -> int:
    """Compile every module with Python 3.12; returns the bytes of ``.py`` sources dropped.

    The project's own packages keep their sources (``__pycache__``, unchecked-hash ``.pyc``: valid
    whatever modification times the zip gives the files). Third-party packages become sourceless
    (a ``.pyc`` beside each module, the ``.py`` removed): Lambda reads ``/var/task`` read-only, so a
    cold start without ``.pyc`` compiles every imported module in memory (about a second), and
    keeping both copies would break the size budget. Their tracebacks show file and line only.
    """
    ours = [target / name for name in PACKAGES]
    third_party = [p for p in target.iterdir() if p not in ours and not p.name.endswith(".dist-info")]
    base = [python312, "-m", "compileall", "-q", "-j", "0"]
    result = subprocess.run(
        [*base, "--invalidation-mode", "unchecked-hash", *map(str, ours)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PackagingError(f"compileall failed on the project's packages:\n{result.stdout[-2000:]}")
    # a module that does not compile for 3.12 (none today) simply keeps its source
    subprocess.run([*base, "-b", *map(str, third_party)], capture_output=True, text=True, check=False)
    dropped = 0
    for source in target.rglob("*.py"):
        if any(package in source.parents for package in ours):
            continue
        if source.with_suffix(".pyc").is_file():
            dropped += source.stat().st_size
            source.unlink()
    return dropped


def tree_size(target: Path) -> int:
    return sum(p.stat().st_size for p in target.rglob("*") if p.is_file() and not p.is_symlink())


def zipped_size(target: Path) -> int:
    """Size of the asset as a deflated zip (what Lambda's 50 MB direct-upload limit counts)."""
    fd, tmp = tempfile.mkstemp(suffix=".zip", dir=target.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for path in sorted(target.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(target).as_posix())
        return os.path.getsize(tmp)
    finally:
        os.unlink(tmp)


def forbidden_packages(target: Path) -> list[str]:
    """Top-level names in the asset that must never be there (TensorFlow, pandas, scipy ...)."""
    names = set()
    for path in target.iterdir():
        if path.name == REPORT:
            continue
        if path.name.endswith((".dist-info", ".data")):
            names.add(_normalise(path.name.split("-")[0]))
        else:
            names.add(_normalise(path.name.split(".")[0]))
    return sorted(n for n in names if any(n == f or n.startswith(f + "-") for f in FORBIDDEN))


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def build_lambda_asset(
    out_dir: str | os.PathLike[str] = "build/lambda",
    arch: str = "x86_64",
    *,
    verbose: bool = False,
    budget_bytes: int = BUDGET_BYTES,
) -> Path:
    """Build the Lambda asset directory (replacing ``out_dir``) and return its path.

    The handler is ``recommender.handler.lambda_handler``; the runtime is ``python3.12``.
    """
    out = Path(out_dir).resolve()
    if out == ROOT or (ROOT in out.parents and out.relative_to(ROOT).parts[0] in (*PACKAGES, "recs", "tests", "infra")):
        raise PackagingError(f"refusing to replace {out}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _say(verbose, f"Building the Lambda asset in {out} (python{PYTHON_VERSION}, {arch})")
    requirements = serve_requirements()
    _pip_install(out, requirements, arch, verbose)
    removed = remove_distributions(out, (*RUNTIME_PROVIDED, *UNUSED))
    _say(verbose, f"  removed {', '.join(removed)} (provided by the runtime, or unused)")
    _copy_packages(out)
    saved = strip(out)
    _say(verbose, f"  stripped tests, stubs, headers and caches: {_mb(saved)}")
    python312 = find_python312()
    if python312:
        dropped = compile_pyc(out, python312)
        _say(verbose, f"  compiled .pyc with {python312}; third-party sources dropped: {_mb(dropped)}")
    else:
        _say(verbose, "  no Python 3.12 interpreter found: .pyc files not compiled (cold starts compile in memory)")
    forbidden = forbidden_packages(out)
    if forbidden:
        raise PackagingError(f"the asset contains forbidden packages: {', '.join(forbidden)}")
    unzipped = tree_size(out)
    zipped = zipped_size(out)
    report: dict[str, Any] = {
        "handler": HANDLER,
        "runtime": f"python{PYTHON_VERSION}",
        "architecture": arch,
        "unzipped_bytes": unzipped,
        "zipped_bytes": zipped,
        "budget_bytes": budget_bytes,
        "pyc_compiled": bool(python312),
        "removed_distributions": removed,
        "distributions": sorted(p.name[: -len(".dist-info")] for p in out.glob("*.dist-info")),
    }
    (out / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _say(verbose, f"Lambda asset: {_mb(unzipped)} unzipped, {_mb(zipped)} zipped (budget {_mb(budget_bytes)} unzipped)")
    if unzipped > budget_bytes:
        raise PackagingError(f"the asset is {_mb(unzipped)} unzipped, over the {_mb(budget_bytes)} budget")
    return out


def read_report(asset_dir: str | os.PathLike[str]) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((Path(asset_dir) / REPORT).read_text(encoding="utf-8"))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.packaging", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="build/lambda")
    parser.add_argument("--arch", choices=ARCHES, default="x86_64")
    args = parser.parse_args(argv)
    try:
        build_lambda_asset(args.out, args.arch, verbose=True)
    except PackagingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
