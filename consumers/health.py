"""Is the broker answering? A watchdog that says so once, clearly, in the log and a gauge.

kafka-python rides out an outage silently: requests just stay pending. To tell the
operator, a daemon thread sends a Kafka ``ApiVersions`` request (allowed before any
authentication) to the bootstrap servers every few seconds with a short timeout. A
paused broker still completes TCP handshakes, so only an answer counts as alive.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable

from alerting.settings import KafkaSettings

log = logging.getLogger(__name__)

_API_VERSIONS = struct.pack(">hhih", 18, 0, 0x7A11, 8) + b"alerting"
_REQUEST = struct.pack(">i", len(_API_VERSIONS)) + _API_VERSIONS


def _tls(settings: KafkaSettings) -> ssl.SSLContext | None:
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
    )
    if settings.ssl_certfile:
        password = settings.ssl_password.get_secret_value() if settings.ssl_password else None
        context.load_cert_chain(
            str(settings.ssl_certfile),
            str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
            password,
        )
    return context


def probe(settings: KafkaSettings, timeout_s: float = 2.0) -> bool:
    """True if any bootstrap server answers an ApiVersions request within ``timeout_s``."""
    context = _tls(settings)
    for server in (settings.bootstrap_servers or "").split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as raw:
                raw.settimeout(timeout_s)
                sock = context.wrap_socket(raw, server_hostname=host) if context else raw
                sock.sendall(_REQUEST)
                header = sock.recv(8)
                if len(header) == 8 and struct.unpack(">i", header[4:])[0] == 0x7A11:
                    return True
        except (OSError, ValueError):
            continue
    return False


class BrokerWatchdog:
    """Probe in the background; log each change of state once; report it to ``on_change``."""

    def __init__(
        self,
        settings: KafkaSettings,
        interval_s: float = 2.0,
        on_change: Callable[[bool], None] | None = None,
        check: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.interval_s = interval_s
        self.on_change = on_change
        self.check = check or (lambda: probe(settings, timeout_s=min(2.0, interval_s)))
        self.up = True
        self.down_since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-watchdog", daemon=True)

    def start(self) -> BrokerWatchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def observe(self, up: bool) -> None:
        """Record one probe result (the thread calls this; tests may too)."""
        if up == self.up:
            return
        self.up = up
        if not up:
            self.down_since = time.monotonic()
            log.warning(
                "broker %s is not answering; waiting for it to come back. Events are read "
                "again from the last committed offset, so nothing is lost",
                self.settings.bootstrap_servers,
            )
        else:
            lasted = time.monotonic() - (self.down_since or time.monotonic())
            log.warning(
                "broker %s answers again after %.0fs; carrying on",
                self.settings.bootstrap_servers,
                lasted,
            )
        if self.on_change is not None:
            self.on_change(up)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.observe(self.check())
