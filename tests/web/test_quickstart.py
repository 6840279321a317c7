"""`recs up` (the README's main job) ends by printing the try-it page's address, which serves the page."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.web.conftest import ROOT


def test_recs_up_ends_with_the_page_address(movielens_bundle: Path, tmp_path: Path) -> None:
    # GIVEN a trained bundle WHEN `recs up` runs (it indexes, then serves)
    proc = subprocess.Popen(
        [sys.executable, "-m", "recs", "up", "--bundle", str(movielens_bundle), "--store", str(tmp_path / "store"),
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not (lines and lines[-1].startswith("Try it in a browser: ")):
            line = proc.stdout.readline()
            assert line, f"recs up ended without the page's address: {lines}"
            lines.append(line.rstrip("\n"))
        # THEN the address comes after the API's (and its curl line), and serves the page
        assert any(line.startswith("Serving model movielens-demo-600 on http://127.0.0.1:") for line in lines)
        assert any(line.strip().startswith("curl ") for line in lines)
        url = lines[-1].split(": ", 1)[1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
            assert b"<title>Movie recommender: try it</title>" in response.read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_quick_start_leaves_the_committed_report_alone() -> None:
    from recs.cli import build_parser

    # `recs up` trains when there is no bundle: its report goes beside the bundle, where git ignores it, not over
    # report/ (the reference run the README's table quotes)
    args = build_parser().parse_args(["up"])
    assert Path(args.report).parent == Path(args.bundle).parent == Path("artifacts")
    assert subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", args.report]).returncode == 0
    assert subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "report/metrics.md"]).returncode == 1
