"""The try-it page: three static files shipped in the package, served by ``recs serve`` at ``/``.

``index.html``, ``app.js`` and ``style.css`` need no build step. The page only calls the public API
(``GET /health``, ``GET /movies/search``, ``POST /recommendations`` with ``explain``), so it also works
pointed at a deployed API: its settings take the API URL and key (kept in the browser's localStorage),
and the API answers CORS.

Only the local server serves these files; the Lambda does not (``infra/packaging.py`` leaves
this folder out of its asset). Behind API Gateway every method needs the API key, which a browser
opening a page does not send, so a deployed page would be a static host's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent

PAGES = {"/": "index.html", "/index.html": "index.html", "/app.js": "app.js", "/style.css": "style.css"}
"""URL path -> file in this folder; nothing else is served from it."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

SECURITY_HEADERS = {
    # the page's own files only; fetch() may reach any API the settings name (a deployed one)
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' http: https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str


def static_file(path: str) -> StaticFile | None:
    """The page file for a URL path (without the query string), or ``None`` when it is not one."""
    name = PAGES.get(path)
    if name is None:
        return None
    file = WEB_DIR / name
    return StaticFile(file.read_bytes(), CONTENT_TYPES[file.suffix])
