"""`recs serve`: the same handler behind a local HTTP server, concurrent, with a working curl line."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from core.bundle import Bundle
from recommender import composition
from recommender.answers import HistoryItem, RecommendationQuery
from recommender.handler import ThreadSafeRestResolver
from recs.local.server import LocalServer, build_server, http_to_event

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(bundle_dir: Path, tmp_path: Path) -> Iterator[LocalServer]:
    srv = build_server(str(bundle_dir), port=0, embedded_store=str(tmp_path / "store")).start()
    try:
        yield srv
    finally:
        srv.shutdown()


def http(url: str, body: Any = None, method: str | None = None, headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and not (headers or {}).get("Content-Type"):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_requests_go_through_the_lambda_handler(server: LocalServer, bundle: Bundle) -> None:
    status, headers, body = http(f"{server.url}/recommendations", {"history": [{"movie_id": 12, "rating": 5}], "k": 3})
    assert status == 200
    assert body["model_version"] == bundle.model_version and len(body["items"]) == 3
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Correlation-Id"]
    status, _, health = http(f"{server.url}/health")
    assert status == 200 and health["index"]["kind"] == "numpy"
    status, _, similar = http(f"{server.url}/movies/12/similar?k=2")
    assert status == 200 and len(similar["items"]) == 2
    status, _, error = http(f"{server.url}/recommendations", {"k": 0})
    assert status == 422 and error["errors"][0]["field"] == "k"
    status, _, error = http(f"{server.url}/recommendations", b"\xff\xfe not utf-8")
    assert status == 400
    status, _, doc = http(f"{server.url}/openapi.json")
    assert status == 200 and "/recommendations" in doc["paths"]


def test_concurrent_requests_each_get_their_own_answer(server: LocalServer) -> None:
    # GIVEN 40 different histories WHEN they are sent at once from 8 threads
    service = server.container.service
    histories = [[{"movie_id": 1 + (i * 7 + j) % 300, "rating": 4.0} for j in range(1 + i % 5)] for i in range(40)]

    def ask(history: list[dict[str, Any]]) -> tuple[int, list[int]]:
        status, _, body = http(f"{server.url}/recommendations", {"history": history, "k": 5})
        return status, [item["movie_id"] for item in body["items"]]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, histories))
    # THEN each answer is the service's answer for that history (no request saw another's event)
    for history, (status, got) in zip(histories, answers, strict=True):
        query = RecommendationQuery(history=[HistoryItem(h["movie_id"], h["rating"]) for h in history], k=5)
        assert status == 200
        assert got == [h.movie.movie_id for h in service.recommend(query).items]


def test_the_curl_line_works(server: LocalServer) -> None:
    line = server.curl_example()
    args = shlex.split(line)
    assert args[:4] == ["curl", "-s", "-X", "POST"]
    url = args[4]
    payload = args[args.index("-d") + 1]
    status, _, body = http(url, json.loads(payload))
    assert status == 200 and len(body["items"]) == 5


def test_http_requests_become_rest_proxy_events() -> None:
    event = http_to_event(
        "GET", "/movies/3/similar?k=4&k=5&empty=", [("Host", "x"), ("Accept", "a"), ("Accept", "b")], None, "10.0.0.1"
    )
    assert event["httpMethod"] == "GET" and event["path"] == "/movies/3/similar"
    assert event["queryStringParameters"] == {"k": "5", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"k": ["4", "5"], "empty": [""]}
    assert event["multiValueHeaders"]["Accept"] == ["a", "b"]
    assert event["requestContext"]["identity"]["sourceIp"] == "10.0.0.1"
    assert event["body"] is None and event["isBase64Encoded"] is False
    binary = http_to_event("POST", "/recommendations", [], b"\xff\x00")
    assert binary["isBase64Encoded"] is True


def test_shutdown_forgets_the_service(bundle_dir: Path, tmp_path: Path) -> None:
    srv = build_server(str(bundle_dir), port=0, embedded_store=str(tmp_path / "s")).start()
    assert composition.peek() is srv.container
    srv.shutdown()
    assert composition.peek() is None


def test_recs_serve_prints_a_curl_line_that_works(bundle_dir: Path, tmp_path: Path) -> None:
    # GIVEN `recs serve` started as a user would
    proc = subprocess.Popen(
        [sys.executable, "-m", "recs", "serve", "--bundle", str(bundle_dir), "--port", "0",
         "--store", str(tmp_path / "store")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        # WHEN the printed curl line is pasted into a shell
        curl = next(line.strip() for line in lines if line.strip().startswith("curl "))
        assert re.search(r"http://127\.0\.0\.1:\d+/recommendations", curl)
        result = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
        # THEN recommendations come back
        assert result.returncode == 0, result.stderr
        assert len(json.loads(result.stdout)["items"]) == 5
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _resolve_concurrently(resolver: Any) -> list[dict[str, Any]]:
    barrier = threading.Barrier(2)

    @resolver.get("/echo/<name>")
    def echo(name: str) -> dict[str, Any]:
        barrier.wait(timeout=10)  # both requests are inside a route now
        return {"name": name, "path": resolver.current_event.path, "args": resolver.context.get("_route_args")}

    def run(name: str) -> dict[str, Any]:
        event = http_to_event("GET", f"/echo/{name}", [], None)
        return dict(json.loads(resolver.resolve(event, None)["body"]))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(run, ["a", "b"]))


def test_the_resolver_keeps_each_threads_request_apart() -> None:
    # GIVEN two requests inside their routes at the same time (the local server's threads)
    answers = _resolve_concurrently(ThreadSafeRestResolver())
    # THEN each sees its own event and route arguments
    assert answers == [
        {"name": "a", "path": "/echo/a", "args": {"name": "a"}},
        {"name": "b", "path": "/echo/b", "args": {"name": "b"}},
    ]


def test_the_plain_powertools_resolver_would_mix_them_up() -> None:
    """Why ThreadSafeRestResolver exists: Powertools keeps the current event on the class."""
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

    answers = _resolve_concurrently(APIGatewayRestResolver())
    assert answers[0]["path"] == answers[1]["path"]


def test_a_chunked_body_is_answered_once_on_a_keep_alive_connection(server: LocalServer) -> None:
    # GIVEN a keep-alive client sending a chunked body (no Content-Length), then a second request
    import socket

    chunks = [b'{"history": [{"movie_id": 2}], ', b'"k": 3}']
    chunked = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunked
            + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        received = b""
        while True:
            part = sock.recv(65536)
            if not part:
                break
            received += part
    # THEN the body is read whole (one 200 with k items), and the next request gets its own answer
    answers = []
    while received:
        head, _, rest = received.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
        answers.append((head.split(b" ")[1], json.loads(rest[:length])))
        received = rest[length:]
    assert [status for status, _ in answers] == [b"200", b"200"]
    assert len(answers[0][1]["items"]) == 3 and answers[1][1]["status"] in ("ok", "degraded")


def test_a_body_over_api_gateways_limit_never_reaches_the_handler(server: LocalServer) -> None:
    import socket

    from recs.local.server import MAX_HTTP_BODY

    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {MAX_HTTP_BODY + 1}\r\n\r\n".encode()
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 413 ")
