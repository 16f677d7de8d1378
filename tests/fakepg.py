"""A fake PostgreSQL server on 127.0.0.1 that records what clients send, then refuses them.

It answers an SSL or GSS request with "no", asks for a cleartext password (so that a client
that has one sends it), records every byte, and ends the connection with an error. It
listens on loopback only, serves a bounded number of connections, and stops itself after
``lifetime`` seconds even if the test forgets to.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104


class FakePostgres:
    def __init__(self, *, max_connections: int = 20, lifetime: float = 60.0) -> None:
        self.received: list[bytes] = []
        self.connections = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._max = max_connections
        self._deadline = time.monotonic() + lifetime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def everything(self) -> bytes:
        return b"".join(self.received)

    def _serve(self) -> None:
        while not self._stop.is_set() and self.connections < self._max and time.monotonic() < self._deadline:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self.connections += 1
            with conn:
                conn.settimeout(2.0)
                with suppress(OSError):  # a client that hangs up early is fine
                    self._talk(conn)
        self._sock.close()

    def _read_message(self, conn: socket.socket, *, typed: bool) -> bytes:
        head = self._recv(conn, 5 if typed else 4)
        length = struct.unpack("!I", head[-4:])[0]
        body = self._recv(conn, max(length - 4, 0))
        self.received.append(head + body)
        return body

    def _recv(self, conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise OSError("client closed")
            data += chunk
        return data

    def _talk(self, conn: socket.socket) -> None:
        for _ in range(3):  # SSL request, GSS request, then the startup message
            body = self._read_message(conn, typed=False)
            code = struct.unpack("!I", body[:4])[0] if len(body) >= 4 else 0
            if code in (_SSL_REQUEST, _GSS_REQUEST):
                conn.sendall(b"N")
                continue
            break
        conn.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        self._read_message(conn, typed=True)
        error = b"SFATAL\x00C28P01\x00Mpassword authentication failed\x00\x00"
        conn.sendall(b"E" + struct.pack("!I", len(error) + 4) + error)

    def start(self) -> FakePostgres:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextmanager
def fake_postgres(**kwargs: float) -> Iterator[FakePostgres]:
    server = FakePostgres(**kwargs).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
