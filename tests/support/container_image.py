"""What the container-image tests share (tests/indexer/test_container.py, tests/training/test_container.py): they check
an image without Docker, from its Dockerfile, its requirements file and the root .dockerignore, with its
site-packages linked from this virtualenv."""

from __future__ import annotations

import ast
import fnmatch
import re
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def requirements(path: Path) -> list[Requirement]:
    """The requirements of a requirements file (no comments, no blank lines)."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return [Requirement(ln) for ln in lines if ln and not ln.startswith("#")]


def dockerignore() -> list[str]:
    """The patterns of the repository's .dockerignore."""
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(p, bare) for p in parts):
            return True
    return False


def dependency_closure(reqs: list[Requirement]) -> set[str]:
    """Distributions the requirements install (``Requires-Dist`` followed, markers evaluated)."""
    seen: set[str] = set()
    todo = list(reqs)
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        for raw in metadata.distribution(req.name).requires or []:
            sub = Requirement(raw)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                todo.append(sub)
    return seen


def link_site_packages(dists: set[str], target: Path) -> None:
    """Symlink the top-level files and folders of ``dists`` (and their .dist-info) into ``target``."""
    target.mkdir()
    for name in dists:
        dist = metadata.distribution(name)
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if not (target / top).exists() and (base / top).exists():
                (target / top).symlink_to(base / top)


def unprovided_imports(packages: Sequence[str], closure: set[str]) -> dict[str, list[str]]:
    """Top-level modules that the repository's ``packages`` import and that neither the standard library, those
    packages nor the distributions in ``closure`` provide: ``{module: [names of the importing files]}``."""
    provided = {Path(str(f)).parts[0].removesuffix(".py") for name in closure
                for f in metadata.distribution(name).files or []}
    modules = {*packages, *sys.stdlib_module_names}
    missing: dict[str, list[str]] = {}
    for path in [p for package in packages for p in (ROOT / package).rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            for name in names:
                top = name.split(".")[0]
                if top not in modules and top not in provided:
                    missing.setdefault(top, []).append(path.name)
    return missing
