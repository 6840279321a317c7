"""Browser tests of the try-it page: headless Chromium (Debian's ``chromium``, installed by
``tasks.py test``) driven by Playwright, against a real ``recs serve`` (``recs.local.server``)
on a small bundle with real MovieLens titles (``tests/web/movielens_bundle.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from recs.local.server import LocalServer, build_server
from tests.web.movielens_bundle import write_movielens_bundle

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("RECS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: `python3 tasks.py test` installs Debian's chromium (apt-get install chromium); "
        "RECS_TEST_CHROMIUM names another binary"
    )
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def movielens_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web") / "bundle"
    write_movielens_bundle(path)
    return path


def start_server(bundle: Path, store: Path) -> LocalServer:
    return build_server(str(bundle), port=0, embedded_store=str(store)).start()


@pytest.fixture
def server(movielens_bundle: Path, tmp_path: Path) -> Iterator[LocalServer]:
    srv = start_server(movielens_bundle, tmp_path / "store")
    try:
        yield srv
    finally:
        srv.shutdown()


@pytest.fixture
def page(browser: Browser, server: LocalServer) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP, base_url=server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(10_000)
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def served_process(movielens_bundle: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``recs serve`` in its own process (stopping it closes every connection, as a real outage does),
    and the page address it prints last."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "recs", "serve", "--bundle", str(movielens_bundle), "--port", "0",
         "--store", str(tmp_path / "store")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        url = ""
        for _ in range(10):
            line = proc.stdout.readline()
            if line.startswith("Try it in a browser: "):
                url = line.split(": ", 1)[1].strip()
                break
        assert url.startswith("http://127.0.0.1:"), "recs serve did not print the page's address"
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def posted_bodies(page: Page) -> list[dict[str, Any]]:
    """Every ``POST /recommendations`` body the page sends from now on (appended as they go)."""
    bodies: list[dict[str, Any]] = []

    def record(request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/recommendations"):
            bodies.append(request.post_data_json)

    page.on("request", record)
    return bodies
