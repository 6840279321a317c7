"""``recs serve``: the Lambda handler behind a local HTTP server, and the try-it page at ``/``.

Each HTTP request becomes an API Gateway REST proxy event and goes through exactly the handler
that runs in Lambda (``recommender.handler.lambda_handler``). The HTTP side is cheroot's WSGI server
(CherryPy's): a pool of worker threads, keep-alive, chunked request bodies, body limits and
``TCP_NODELAY`` are its job, not this module's. The adapters come from the same
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
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cheroot.wsgi import Server

from recommender import composition
from recommender.settings import ServiceSettings

MAX_HTTP_BODY = 10 * 1024 * 1024
"""API Gateway's own payload limit; bodies above it get 413 from the server, never reach the handler."""
THREADS = 16
"""Worker threads: requests answered at once (idle keep-alive connections hold none)."""
BACKLOG = 128
KEEP_ALIVE_SECONDS = 10


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


def _headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    """The request headers of a WSGI environ, named as the client sent them (case aside)."""
    out = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out.append((key[5:].replace("_", "-").title(), str(value)))
    for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
        if environ.get(key):
            out.append((name, str(environ[key])))
    return out


def _status(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The WSGI application: the try-it page's files, else an API Gateway REST event for the handler."""
    from recommender.handler import lambda_handler
    from recs.local import web

    method = str(environ.get("REQUEST_METHOD", "GET"))
    path = str(environ.get("PATH_INFO") or "/")
    if method in ("GET", "HEAD"):
        page = web.static_file(path)
        if page is not None:
            start_response("200 OK", [("Content-Type", page.content_type), *web.SECURITY_HEADERS.items(),
                                      ("Content-Length", str(len(page.body)))])
            return [] if method == "HEAD" else [page.body]
    body = environ["wsgi.input"].read() if environ.get("wsgi.input") is not None else b""
    # the path as the client sent it (still URL-encoded), as API Gateway puts it in the event
    target = str(environ.get("REQUEST_URI") or (path + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING")
                                                         else "")))
    event = http_to_event(method, target, _headers(environ), body or None, str(environ.get("REMOTE_ADDR", "")))
    response = lambda_handler(event, LocalContext(event["requestContext"]["requestId"]))
    raw = response.get("body") or ""
    payload = base64.b64decode(raw) if response.get("isBase64Encoded") else str(raw).encode("utf-8")
    headers: list[tuple[str, str]] = []
    sent = set()
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers += [(key, str(value)) for value in values]
        sent.add(key.lower())
    headers += [(k, str(v)) for k, v in (response.get("headers") or {}).items() if k.lower() not in sent]
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    headers.append(("Content-Length", str(len(payload))))
    start_response(_status(int(response.get("statusCode", 500))), headers)
    return [] if method == "HEAD" else [payload]


class LocalServer:
    """A running (or ready) local API server: cheroot's WSGI server around ``application``."""

    def __init__(self, wsgi: Any, container: composition.Container) -> None:
        self.wsgi = wsgi
        self.container = container
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self.wsgi.bind_addr[0])

    @property
    def port(self) -> int:
        return int(self.wsgi.bind_addr[1])

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
        self._thread = threading.Thread(target=self.wsgi.serve, name="recs-serve", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until Ctrl-C or SIGTERM."""
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            self.wsgi.serve()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.wsgi.stop()

    def shutdown(self) -> None:
        """Stop serving and forget the service (the next server builds its own)."""
        self.wsgi.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
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
    wsgi = Server((host, port), application, numthreads=THREADS, server_name="recs-local",
                  request_queue_size=BACKLOG, timeout=KEEP_ALIVE_SECONDS)
    wsgi.max_request_body_size = MAX_HTTP_BODY
    wsgi.prepare()  # binds now: port 0 becomes a real port, and a busy port fails here
    return LocalServer(wsgi, container)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


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
