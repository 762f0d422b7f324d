"""Is the broker answering? A watchdog that says so once, clearly, in the log and a gauge.

kafka-python rides out an outage silently: requests just stay pending. To tell the
operator, a daemon thread sends a Kafka ``ApiVersions`` request (allowed before any
authentication) to the bootstrap servers every few seconds with a short timeout. A
paused broker still completes TCP handshakes, so only an answer counts as alive.

With ``kafka.security_protocol = SASL_*`` the probe then logs in (``SaslHandshake``,
``SaslAuthenticate``, with kafka-python's own mechanisms), because the clients hide a
refused login: kafka-python reports only "Unable to bootstrap" after 30 s and librdkafka
retries for ever, while ``ApiVersions`` alone is answered to anyone. A refused login is a
:class:`~alerting.errors.ConfigError` naming the ``kafka.sasl_*`` settings (never the
password): at start (:func:`check_login`), and during the run, where the watchdog reports
the broker down and hands the error to ``on_refused``, which stops the command.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable

from alerting.errors import BrokerError, ConfigError
from alerting.settings import ENV_PREFIX, KafkaSettings

log = logging.getLogger(__name__)

_CORRELATION = 0x7A11
_API_VERSIONS, _SASL_HANDSHAKE, _SASL_AUTHENTICATE = 18, 17, 36
_UNSUPPORTED_SASL_MECHANISM = 33
_SASL_SETTINGS = ("sasl_username", "sasl_password", "sasl_mechanism")
_MAX_ANSWER_BYTES = 1 << 20


def _request(api_key: int, version: int, body: bytes = b"") -> bytes:
    payload = struct.pack(">hhih", api_key, version, _CORRELATION, 8) + b"alerting" + body
    return struct.pack(">i", len(payload)) + payload


_REQUEST = _request(_API_VERSIONS, 0)


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send one request; the body of its response (after the correlation id)."""
    sock.sendall(request)
    (size,) = struct.unpack(">i", _read(sock, 4))
    if not 4 <= size <= _MAX_ANSWER_BYTES:  # e.g. a TLS alert or HTTP: not Kafka
        raise ConnectionError("not a Kafka answer")
    response = _read(sock, size)
    if struct.unpack(">i", response[:4])[0] != _CORRELATION:
        raise ConnectionError("not a Kafka answer")
    return response[4:]


def _redact(text: str, settings: KafkaSettings) -> str:
    secret = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    return text.replace(secret, "***") if secret else text


def login_refused(settings: KafkaSettings, detail: str) -> ConfigError:
    """The error of a refused SASL login: names the settings that fix it, never the password."""
    envs = ", ".join(f"{ENV_PREFIX}KAFKA__{name.upper()}" for name in _SASL_SETTINGS)
    return ConfigError(
        _redact(
            f"the brokers at {settings.bootstrap_servers} refused the SASL "
            f"{settings.sasl_mechanism} login of user {settings.sasl_username!r} ({detail}); "
            f"check kafka.sasl_username, kafka.sasl_password and kafka.sasl_mechanism ({envs})",
            settings,
        )
    )


def _strings(data: bytes, offset: int) -> list[str]:
    (count,) = struct.unpack_from(">i", data, offset)
    offset += 4
    out = []
    for _ in range(max(count, 0)):
        (length,) = struct.unpack_from(">h", data, offset)
        out.append(data[offset + 2 : offset + 2 + length].decode(errors="replace"))
        offset += 2 + length
    return out


def _login(sock: socket.socket, settings: KafkaSettings, host: str, versions: bytes) -> None:
    """Log in over ``sock`` as the clients would; :func:`login_refused` if refused."""
    from kafka.net.sasl import get_sasl_mechanism

    name = settings.sasl_mechanism or ""
    if settings.sasl_username is None or settings.sasl_password is None:
        raise ConfigError(
            f"kafka.sasl_mechanism {name} needs kafka.sasl_username and kafka.sasl_password "
            f"({ENV_PREFIX}KAFKA__SASL_USERNAME, {ENV_PREFIX}KAFKA__SASL_PASSWORD)"
        )
    answer = _exchange(
        sock, _request(_SASL_HANDSHAKE, 1, struct.pack(">h", len(name)) + name.encode())
    )
    (error,) = struct.unpack_from(">h", answer, 0)
    offered = _strings(answer, 2)
    if error == _UNSUPPORTED_SASL_MECHANISM or (error == 0 and name not in offered):
        listed = ", ".join(offered) or "none"
        raise ConfigError(
            f"the brokers at {settings.bootstrap_servers} do not accept SASL {name} "
            f"(UNSUPPORTED_SASL_MECHANISM; the mechanisms they list: {listed}); "
            f"set kafka.sasl_mechanism ({ENV_PREFIX}KAFKA__SASL_MECHANISM) to one they accept, "
            f"or kafka.security_protocol ({ENV_PREFIX}KAFKA__SECURITY_PROTOCOL) if they take "
            "no SASL"
        )
    if error:
        raise login_refused(settings, f"SaslHandshake error {error}")
    version = min(_max_version(versions, _SASL_AUTHENTICATE), 1)
    mechanism = get_sasl_mechanism(name)(host=host, **settings.client_options())
    while not mechanism.is_done():
        token = mechanism.auth_bytes()
        answer = _exchange(
            sock, _request(_SASL_AUTHENTICATE, version, struct.pack(">i", len(token)) + token)
        )
        error, length = struct.unpack_from(">hh", answer, 0)
        message = answer[4 : 4 + max(length, 0)].decode(errors="replace")
        if error:
            raise login_refused(settings, message or f"error {error}")
        offset = 4 + max(length, 0)
        (size,) = struct.unpack_from(">i", answer, offset)
        mechanism.receive(answer[offset + 4 : offset + 4 + max(size, 0)])
    if not mechanism.is_authenticated():
        raise login_refused(settings, "the broker's final answer did not authenticate")


def _max_version(api_versions: bytes, api_key: int) -> int:
    """The broker's highest version of ``api_key``, from an ApiVersions v0 answer (0 if absent)."""
    (count,) = struct.unpack_from(">i", api_versions, 2)
    for i in range(max(count, 0)):
        key, _low, high = struct.unpack_from(">hhh", api_versions, 6 + 6 * i)
        if key == api_key:
            return int(high)
    return 0


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
    """True if any bootstrap server answers an ApiVersions request within ``timeout_s`` (and,
    with SASL, accepts the login); :class:`ConfigError` if one refuses the login."""
    return _probe(settings, timeout_s) is None


def _probe(settings: KafkaSettings, timeout_s: float) -> str | None:
    """None if a bootstrap server answers, else why none did."""
    context = _tls(settings)
    sasl = settings.security_protocol.startswith("SASL")
    why = "no bootstrap server"
    for server in (settings.bootstrap_servers or "").split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as raw:
                raw.settimeout(timeout_s)
                sock = context.wrap_socket(raw, server_hostname=host) if context else raw
                versions = _exchange(sock, _REQUEST)
                if sasl:
                    _login(sock, settings, host, versions)
                return None
        except ConfigError:
            raise  # the login refused: the caller names the settings
        except Exception as exc:  # OSError, struct.error, a SCRAM answer without its fields...
            why = str(exc) or type(exc).__name__
            continue
    return _redact(why, settings)


def check_login(settings: KafkaSettings, timeout_s: float | None = None) -> bool:
    """At start: whether the cluster answers; :class:`ConfigError` if it refuses the login."""
    timeout = min(settings.request_timeout_ms / 1000, 10.0) if timeout_s is None else timeout_s
    return probe(settings, timeout)


def require_broker(settings: KafkaSettings, timeout_s: float | None = None) -> None:
    """At start: :class:`BrokerError` naming ``kafka.bootstrap_servers`` if no broker
    answers, :class:`ConfigError` if one refuses the login."""
    timeout = min(settings.request_timeout_ms / 1000, 10.0) if timeout_s is None else timeout_s
    why = _probe(settings, timeout)
    if why is not None:
        raise BrokerError(
            f"no broker answers at {settings.bootstrap_servers} ({why}); check "
            f"kafka.bootstrap_servers ({ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS) and that the "
            "cluster is up"
        )


def explain(settings: KafkaSettings, exc: BaseException) -> Exception | None:
    """What a Kafka client's exception that escaped a command means, found by a fresh probe:
    a refused login (:class:`ConfigError`), no broker (:class:`BrokerError`), or None when
    the cluster answers (then the exception is not about reaching it)."""
    if type(exc).__module__.split(".")[0] not in ("kafka", "confluent_kafka"):
        return None
    if not settings.bootstrap_servers:
        return None
    try:
        require_broker(settings)
    except (ConfigError, BrokerError) as error:
        if isinstance(error, BrokerError):
            return BrokerError(f"{error} [{_redact(str(exc), settings)}]")
        return error
    return None


class BrokerWatchdog:
    """Probe in the background; log each change of state once; report it to ``on_change``.

    A refused login (``check`` raises :class:`ConfigError`) ends the watch: the broker is
    reported down, the error kept in :attr:`refused` and handed to ``on_refused`` (which
    stops the command; it then raises :attr:`refused`). Credentials do not fix themselves.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        interval_s: float = 2.0,
        on_change: Callable[[bool], None] | None = None,
        check: Callable[[], bool] | None = None,
        on_refused: Callable[[ConfigError], None] | None = None,
    ) -> None:
        self.settings = settings
        self.interval_s = interval_s
        self.on_change = on_change
        self.on_refused = on_refused
        self.check = check or (lambda: probe(settings, timeout_s=min(2.0, interval_s)))
        self.up = True
        self.down_since: float | None = None
        self.refused: ConfigError | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
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

    def refuse(self, error: ConfigError) -> None:
        """A login was refused (the probe's, or a client's): down, and ``on_refused``, once."""
        with self._lock:
            if self.refused is not None:
                return
            self.refused = error
        log.error("%s", error)
        if self.up:
            self.up = False
            self.down_since = time.monotonic()
            if self.on_change is not None:
                self.on_change(False)
        if self.on_refused is not None:
            self.on_refused(error)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                up = self.check()
            except ConfigError as error:
                self.refuse(error)
                return
            self.observe(up)
