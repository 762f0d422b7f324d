"""A SASL/PLAIN-terminating proxy for the Kafka protocol, in front of the embedded broker.

tansu has no SASL, so the integration tests put this in front of it: it answers
``ApiVersions`` itself (tansu's list plus ``SaslHandshake`` and ``SaslAuthenticate``),
``SaslHandshake`` (PLAIN only) and ``SaslAuthenticate`` (checks user and password; a
wrong one gets ``SASL_AUTHENTICATION_FAILED``, error 58, and the connection is closed,
as a Kafka broker does), closes a connection that sends anything else before it logged
in, and once a connection has logged in relays its bytes to the broker untouched.

The broker must advertise the proxy's address (``--advertised-listener-url``), so that
the clients' connections to the broker's node go through the proxy too.
:meth:`SaslProxy.refuse_from_now` changes the password and drops every connection:
the clients reconnect and are refused, as when credentials are revoked on a live cluster.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE = 58, 33, 34


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", _read_exact(sock, 4))
    return _read_exact(sock, size)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _uvarint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def broker_api_versions(host: str, port: int) -> dict[int, tuple[int, int]]:
    """The broker's ``{api key: (min, max)}``, from an ``ApiVersions`` v0 request."""
    request = struct.pack(">hhih", API_VERSIONS, 0, 1, 5) + b"proxy"
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(_frame(request))
        body = read_frame(sock)
    _correlation, error, count = struct.unpack_from(">ihi", body, 0)
    assert error == 0, error
    versions = {}
    for i in range(count):
        key, low, high = struct.unpack_from(">hhh", body, 10 + 6 * i)
        versions[key] = (low, high)
    return versions


class SaslProxy:
    """Listens on a free loopback port; relays logged-in connections to ``upstream``."""

    def __init__(self, upstream: tuple[str, int], username: str, password: str) -> None:
        self.upstream = upstream
        self.username = username
        self.password = password
        self.logins = 0  # accepted
        self.refusals = 0  # SASL_AUTHENTICATION_FAILED answers sent
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._versions: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> SaslProxy:
        """Start serving; the upstream broker must answer by now."""
        self._versions = {
            **broker_api_versions(*self.upstream),
            SASL_HANDSHAKE: (0, 1),
            SASL_AUTHENTICATE: (0, 1),
        }
        threading.Thread(target=self._accept, name="sasl-proxy", daemon=True).start()
        return self

    def refuse_from_now(self, new_password: str = "rotated-elsewhere") -> None:
        """Only ``new_password`` logs in from now on; every open connection is dropped."""
        with self._lock:
            self.password = new_password
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self.refuse_from_now()
        self._server.close()

    def __enter__(self) -> SaslProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ connections

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @contextlib.contextmanager
    def _tracked(self, *socks: socket.socket) -> Iterator[None]:
        with self._lock:
            self._open.update(socks)
        try:
            yield
        finally:
            with self._lock:
                self._open.difference_update(socks)
            for sock in socks:
                sock.close()

    def _serve(self, client: socket.socket) -> None:
        with self._tracked(client), contextlib.suppress(OSError, ConnectionError):
            if self._login(client):
                upstream = socket.create_connection(self.upstream, timeout=10)
                upstream.settimeout(None)
                with self._tracked(upstream):
                    relay = threading.Thread(
                        target=self._pump, args=(upstream, client), daemon=True
                    )
                    relay.start()
                    self._pump(client, upstream)
                    relay.join(timeout=5)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _login(self, client: socket.socket) -> bool:
        """Answer the pre-login requests; True once the client has logged in."""
        mechanism_ok = False
        while True:
            request = read_frame(client)
            key, version, correlation = struct.unpack_from(">hhi", request, 0)
            (client_id_len,) = struct.unpack_from(">h", request, 8)
            body = request[10 + max(client_id_len, 0) :]
            header = struct.pack(">i", correlation)
            if key == API_VERSIONS:
                client.sendall(_frame(header + self._api_versions(version)))
            elif key == SASL_HANDSHAKE:
                (length,) = struct.unpack_from(">h", body, 0)
                mechanism = body[2 : 2 + length].decode()
                mechanism_ok = mechanism == "PLAIN"
                error = 0 if mechanism_ok else UNSUPPORTED_SASL_MECHANISM
                answer = struct.pack(">hih", error, 1, 5) + b"PLAIN"
                client.sendall(_frame(header + answer))
                if mechanism_ok and version == 0:  # v0: the token follows unframed by Kafka
                    token = read_frame(client)
                    if not self._check(token):
                        return False  # a v0 broker just closes the connection
                    client.sendall(_frame(b""))
                    return True
            elif key == SASL_AUTHENTICATE and mechanism_ok:
                (length,) = struct.unpack_from(">i", body, 0)
                ok = self._check(body[4 : 4 + length])
                message = b"Authentication failed: Invalid username or password"
                answer = (
                    struct.pack(">hh", 0, -1)
                    if ok
                    else struct.pack(">hh", SASL_AUTHENTICATION_FAILED, len(message)) + message
                ) + struct.pack(">i", 0)
                if version >= 1:
                    answer += struct.pack(">q", 0)  # session lifetime: no re-authentication
                client.sendall(_frame(header + answer))
                return ok  # a refused connection is closed after the answer
            else:  # anything before the login is an illegal SASL state: Kafka closes
                return False

    def _check(self, token: bytes) -> bool:
        parts = token.split(b"\0")
        with self._lock:
            ok = len(parts) == 3 and parts[1:] == [
                self.username.encode(),
                self.password.encode(),
            ]
            if ok:
                self.logins += 1
            else:
                self.refusals += 1
        return ok

    def _api_versions(self, version: int) -> bytes:
        entries = sorted(self._versions.items())
        if version >= 3:  # flexible: compact array, tagged fields
            body = struct.pack(">h", 0) + _uvarint(len(entries) + 1)
            for key, (low, high) in entries:
                body += struct.pack(">hhh", key, low, high) + b"\0"
            return body + struct.pack(">i", 0) + b"\0"
        body = struct.pack(">hi", 0, len(entries))
        for key, (low, high) in entries:
            body += struct.pack(">hhh", key, low, high)
        return body + (struct.pack(">i", 0) if version >= 1 else b"")
