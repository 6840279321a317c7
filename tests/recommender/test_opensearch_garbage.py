"""An endpoint that answers something other than OpenSearch JSON is an index fault (503), never a 500."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from core.aws import opensearch_client
from recommender.adapters.opensearch_index import OpenSearchIndex
from recommender.errors import IndexUnavailableError


class _HtmlPage(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b"<html><body>502 Bad Gateway</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")  # says JSON, is not
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def html_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_non_json_answer_is_index_unavailable(html_url: str) -> None:
    # GIVEN an "OpenSearch" that answers an HTML page labelled as JSON
    index = OpenSearchIndex(opensearch_client(html_url, timeout_seconds=5, max_retries=0), "movies")
    # WHEN a k-NN search and a popularity search run THEN both are index faults, named as such
    with pytest.raises(IndexUnavailableError, match="not JSON"):
        index.search(np.ones(4, dtype=np.float32), 3)
    with pytest.raises(IndexUnavailableError, match="not JSON"):
        index.popular(3)
