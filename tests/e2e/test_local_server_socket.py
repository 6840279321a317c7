"""The local server answers keep-alive clients without the Nagle / delayed-ACK stall.

A server that writes the headers and the body of an answer in two ``send`` calls with Nagle's
algorithm on makes the body wait for the ACK of the headers, which a keep-alive client delays (about
40 ms on Linux): every answer after the first on a connection would take 40 ms more. cheroot sets
``TCP_NODELAY`` (its ``nodelay`` default) on the listening socket, which every accepted connection
inherits; this checks the accepted connections themselves. ``bench.load`` measures the latency.
"""

from __future__ import annotations

import socket
from pathlib import Path

import cheroot.server

from bench.load import HttpClient
from recommender.settings import ServiceSettings
from recs.local.server import build_server
from recs.local.synthetic import write_synthetic_bundle


def test_every_connection_has_tcp_nodelay(tmp_path: Path, monkeypatch) -> None:
    bundle = write_synthetic_bundle(tmp_path / "bundle", n_movies=30, dimension=8, seed=1)
    seen: list[int] = []
    original = cheroot.server.HTTPConnection.__init__

    def init(self, server, sock, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        original(self, server, sock, *args, **kwargs)
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(cheroot.server.HTTPConnection, "__init__", init)
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
