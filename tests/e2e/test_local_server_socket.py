"""The local server answers keep-alive clients without the Nagle / delayed-ACK stall.

``BaseHTTPRequestHandler`` writes the headers and the body of an answer in two ``send`` calls; with
Nagle's algorithm on, the body waits for the ACK of the headers, which a keep-alive client delays
(about 40 ms on Linux): every answer after the first on a connection took 40 ms more. The server
sets ``TCP_NODELAY`` on each connection (``disable_nagle_algorithm``). ``bench.load`` measures it.
"""

from __future__ import annotations

import socket
from pathlib import Path

from bench.load import HttpClient
from recommender import local_server
from recommender.settings import ServiceSettings
from recs.local.server import build_server
from recs.local.synthetic import write_synthetic_bundle


def test_every_connection_has_tcp_nodelay(tmp_path: Path, monkeypatch) -> None:
    bundle = write_synthetic_bundle(tmp_path / "bundle", n_movies=30, dimension=8, seed=1)
    seen: list[int] = []
    original = local_server._RequestHandler.setup

    def setup(self) -> None:  # type: ignore[no-untyped-def]
        original(self)
        seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(local_server._RequestHandler, "setup", setup)
    settings = ServiceSettings.from_env(env={}, bundle=str(bundle.path), embedded_store=str(tmp_path / "store"))
    server = build_server(port=0, settings=settings).start()
    try:
        client = HttpClient(server.url)
        for _ in range(3):  # three answers on one keep-alive connection
            status, answer = client.request("POST", "/recommendations", {"history": [{"movie_id": 2}], "k": 3})
            assert status == 200 and len(answer["items"]) == 3
        client.close()
    finally:
        server.shutdown()
    assert seen == [1]  # one connection, with Nagle's algorithm off
