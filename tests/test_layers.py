"""The layering of the code, read from the source itself (every import, function-level ones included).

    core/                                   the kernel: imports nothing of the project
      ^
    recommender/ indexer/ training/ scaling/  the apps: import only core/, never each other
      ^
    recs/ infra/ bench/                     compose the apps (the CLI and local server, the CDK app
                                            and the asset packaging, the benchmarks)

and no import cycle anywhere, between modules or between packages.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "core"
APPS = ("recommender", "indexer", "training", "scaling")
COMPOSERS = ("recs", "infra", "bench")
PACKAGES = (KERNEL, *APPS, *COMPOSERS)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imported(path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """``(module, line)`` of every project module ``path`` imports, at any depth of the file."""
    yield from imported_by(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py", modules)


def imported_by(text: str, name: str, is_package: bool, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import core.bundle.x` -> the module core.bundle
                target = target.rpartition(".")[0]
            if target and target.split(".")[0] in PACKAGES:
                yield target, node.lineno


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, int]]:
    modules = project_modules()
    edges: dict[str, dict[str, int]] = defaultdict(dict)
    for name, path in modules.items():
        for target, line in imported(path, modules):
            if target != name:
                edges[name].setdefault(target, line)
    return edges


def top(module: str) -> str:
    return module.split(".")[0]


def test_the_layout_is_what_this_test_knows() -> None:
    found = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert found == set(PACKAGES), "a new top-level package: place it in a layer here and in docs/architecture.md"


def test_the_kernel_imports_nothing_of_the_project(graph: dict[str, dict[str, int]]) -> None:
    bad = [f"{m}:{line} imports {t}" for m, ts in graph.items() if top(m) == KERNEL
           for t, line in ts.items() if top(t) != KERNEL]
    assert bad == []


def test_apps_import_only_the_kernel_and_themselves(graph: dict[str, dict[str, int]]) -> None:
    bad = [f"{m}:{line} imports {t}" for m, ts in graph.items() if top(m) in APPS
           for t, line in ts.items() if top(t) not in (KERNEL, top(m))]
    assert bad == []


def test_nothing_imports_a_composer_but_a_composer(graph: dict[str, dict[str, int]]) -> None:
    bad = [f"{m}:{line} imports {t}" for m, ts in graph.items() if top(m) not in COMPOSERS
           for t, line in ts.items() if top(t) in COMPOSERS]
    assert bad == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules(graph: dict[str, dict[str, int]]) -> None:
    assert _cycles({m: set(ts) for m, ts in graph.items()}) == []


def test_no_import_cycle_between_packages(graph: dict[str, dict[str, int]]) -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    for m, ts in graph.items():
        packages[top(m)] |= {top(t) for t in ts if top(t) != top(m)}
    assert _cycles(packages) == []


def test_the_checks_catch_what_they_look_for() -> None:
    """The detector itself: a cycle of three, a function-level import and a relative one are found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    modules = project_modules()
    text = "import os\ndef f():\n    from recommender.service import RecommendationService\nfrom . import bundle\n"
    found = sorted(t for t, _ in imported_by(text, "core.fake", False, modules))
    assert found == ["core.bundle", "recommender.service"]


def test_importing_the_kernel_and_the_lambda_changes_nothing_and_connects_nowhere() -> None:
    """No side effect at import: no variable set (inside Lambda too), no client library loaded (Powertools
    imports the bare `botocore` package for its user agent; `botocore.session`, what clients need, is absent)."""
    import subprocess
    import sys

    kernel = sorted(m for m in project_modules() if top(m) == KERNEL)
    probe = (
        "import os, sys, json; before = dict(os.environ)\n"
        f"for name in {kernel!r} + ['recommender.handler']: __import__(name)\n"
        "print(json.dumps({'changed': sorted(k for k in set(before) | set(os.environ) "
        "if before.get(k) != os.environ.get(k)), 'clients': sorted(m for m in ('boto3', 'botocore.session', "
        "'opensearchpy', 'redis', 'tensorflow', 'pandas') if m in sys.modules)}))"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_LAMBDA_FUNCTION_NAME": "recs-test", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    import json

    assert json.loads(done.stdout.splitlines()[-1]) == {"changed": [], "clients": []}
