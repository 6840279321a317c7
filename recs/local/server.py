"""``recs serve``: the Lambda handler behind a local HTTP server, and the try-it page at ``/``.

Each HTTP request becomes an API Gateway REST proxy event and goes through exactly the handler
that runs in Lambda (``recommender.handler.lambda_handler``), on a thread of a
``ThreadingHTTPServer``, so requests are served concurrently. The adapters come from the same
settings as in Lambda: the embedded index and the in-process cache unless ``RECS_OPENSEARCH_URL``
and ``RECS_REDIS_URL`` name servers.

From Python (``recs up``, end-to-end tests)::

    server = build_server(bundle="artifacts/bundle", port=0).start()   # port 0: any free port
    ... server.url ...
    server.shutdown()
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from recommender import composition
from recommender.settings import ServiceSettings

MAX_HTTP_BODY = 10 * 1024 * 1024
"""API Gateway's own payload limit; bodies above it never reach the handler."""


@dataclass
class LocalContext:
    """The parts of the Lambda context object the handler and Powertools read."""

    aws_request_id: str
    function_name: str = "recs-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:recs-local"
    log_group_name: str = "local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def http_to_event(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes | None, source_ip: str = "127.0.0.1"
) -> dict[str, Any]:
    """An API Gateway REST proxy event for one HTTP request (``target`` is path plus query)."""
    split = urlsplit(target)
    path = split.path or "/"
    pairs = parse_qsl(split.query, keep_blank_values=True)
    multi_query: dict[str, list[str]] = {}
    for key, value in pairs:
        multi_query.setdefault(key, []).append(value)
    multi_headers: dict[str, list[str]] = {}
    for key, value in headers:
        multi_headers.setdefault(key, []).append(value)
    request_id = str(uuid.uuid4())
    is_base64 = False
    text: str | None = None
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, is_base64 = base64.b64encode(body).decode("ascii"), True
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/local{path}",
            "stage": "local",
            "requestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "protocol": "HTTP/1.1",
            "accountId": "000000000000",
            "apiId": "local",
            "identity": {"sourceIp": source_ip, "userAgent": multi_headers.get("User-Agent", [""])[-1]},
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


class _RequestHandler(BaseHTTPRequestHandler):
    server_version = "recs-local/1"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    """Headers and body are two writes: with Nagle on, a keep-alive client's delayed ACK held every
    answer back about 40 ms."""

    def _dispatch(self) -> None:
        from recommender.handler import lambda_handler

        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._send_plain(411, {"error": "length_required", "message": "send a Content-Length"})
            self.close_connection = True  # the chunks are not read: they must not be parsed as a request
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_HTTP_BODY:
            self._send_plain(413, {"error": "body_too_large", "message": f"the limit is {MAX_HTTP_BODY} bytes"})
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else None
        if self.command in ("GET", "HEAD") and self._send_page(urlsplit(self.path).path):
            return
        event = http_to_event(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
        response = lambda_handler(event, LocalContext(event["requestContext"]["requestId"]))
        self._send_lambda_response(response)

    def _send_lambda_response(self, response: dict[str, Any]) -> None:
        raw = response.get("body") or ""
        payload = base64.b64decode(raw) if response.get("isBase64Encoded") else str(raw).encode("utf-8")
        self.send_response(int(response.get("statusCode", 500)))
        sent = set()
        for key, values in (response.get("multiValueHeaders") or {}).items():
            for value in values:
                self.send_header(key, str(value))
            sent.add(key.lower())
        for key, value in (response.get("headers") or {}).items():
            if key.lower() not in sent:
                self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_page(self, path: str) -> bool:
        """Serve a file of the try-it page (``recs.local.web``) when ``path`` is one; the API never sees it."""
        from recs.local import web

        page = web.static_file(path)
        if page is None:
            return False
        self.send_response(200)
        self.send_header("Content-Type", page.content_type)
        for key, value in web.SECURITY_HEADERS.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(page.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(page.body)
        return True

    def _send_plain(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _dispatch  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the handler logs every request as JSON


class LocalServer:
    """A running (or ready) local API server."""

    def __init__(self, httpd: ThreadingHTTPServer, container: composition.Container) -> None:
        self.httpd = httpd
        self.container = container
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self.httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    def curl_example(self) -> str:
        """A ready-to-paste ``curl`` line asking for recommendations after three popular movies."""
        try:
            ids = [h.movie.movie_id for h in self.container.service.index.popular(3)]
        except Exception:
            ids = []
        history = [{"movie_id": i, "rating": 5.0} for i in ids] or [{"movie_id": 1, "rating": 5.0}]
        body = json.dumps({"history": history, "k": 5})
        return (
            f"curl -s -X POST {self.url}/recommendations -H 'Content-Type: application/json' -d '{body}'"
        )

    def start(self) -> LocalServer:
        """Serve on a background thread; returns at once."""
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="recs-serve", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever()
        finally:
            self.httpd.server_close()

    def shutdown(self) -> None:
        """Stop serving and forget the service (the next server builds its own)."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.httpd.server_close()
        composition.reset()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def build_server(
    bundle: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    settings: ServiceSettings | None = None,
    **overrides: Any,
) -> LocalServer:
    """Build the service (failing fast with ``CompositionError``) and bind the HTTP server.

    ``settings`` default to the ``RECS_*`` environment; ``bundle`` and ``overrides`` beat both.
    """
    base = settings or ServiceSettings.from_env()
    resolved = base.with_overrides(bundle=bundle, **overrides)
    composition.configure(resolved)
    container = composition.get_container()
    httpd = ThreadingHTTPServer((host, port), _RequestHandler)
    httpd.daemon_threads = True
    return LocalServer(httpd, container)


def serve(bundle: str | None = None, *, host: str = "127.0.0.1", port: int = 8080, **overrides: Any) -> None:
    """Build and serve until interrupted, printing the URL and a ``curl`` line first."""
    server = build_server(bundle, host=host, port=port, **overrides)
    container = server.container
    index = container.service.index.kind
    cache = container.service.cache.kind
    model = container.service.model_version or "of the live index (none yet)"
    print(f"Serving model {model} on {server.url} (index: {index}, cache: {cache})")
    print(f"  OpenAPI: {server.url}/openapi.json    health: {server.url}/health")
    print("  Try:")
    print(f"  {server.curl_example()}")
    print(f"Try it in a browser: {server.url}/", flush=True)
    try:
        server.serve_forever()
    finally:
        composition.reset()
