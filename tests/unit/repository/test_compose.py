"""docker-compose.yml and deploy/Dockerfile, checked against the code and deploy/.

No Docker engine runs where these tests run, so nothing here builds the image, pulls an
image or starts a container. What is checked is structure and consistency: the services
exist, every image tag is pinned, every ``ALERTING__`` variable is a real setting with a
valid value (loaded through :func:`load_settings`, as the container would), two detector
replicas share one consumer group, the metrics port agrees across the service, the
Dockerfile and deploy/prometheus, the bind mounts exist and land where deploy/ expects
them, the topic-creation command matches the service's topics, and the Dockerfile runs as
a non-root user with a health check whose Python is run here against a local server.

Not checked (needs an engine): that the images exist and pull, that the image builds,
that Kafka starts with these variables, that the containers reach each other, that
Prometheus scrapes both replicas and that Grafana loads the dashboard.
"""

from __future__ import annotations

import ast
import fnmatch
import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from alerting.cli import build_parser
from alerting.embedded_broker import free_port
from alerting.settings import ENV_PREFIX, Settings, load_settings
from consumers.kafka_python import MAX_MESSAGE_BYTES

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]

# a full version in the tag: 3.9.1, v2.55.1, 3.11.11-slim-bookworm (optionally @sha256:…)
PINNED = re.compile(r"^[\w.\-/]+:v?\d+\.\d+\.\d+([\w.\-]*)(@sha256:[0-9a-f]{64})?$")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables of the file under test reach the settings."""
    for name in list(os.environ):
        if name.startswith("ALERTING"):
            monkeypatch.delenv(name)


# ---------------------------------------------------------------- the Dockerfile


@cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    assert not current, "the Dockerfile ends in a continuation line"
    return instructions


def instructions(keyword: str) -> list[str]:
    return [rest for name, rest in dockerfile() if name == keyword]


def exec_form(text: str) -> list[str]:
    value = json.loads(text)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), text
    return value


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in instructions("ENV"):
        for pair in shlex.split(rest):
            name, sep, value = pair.partition("=")
            assert sep, f"ENV {rest}: use the NAME=value form"
            env[name] = value
    return env


def healthcheck() -> tuple[list[str], list[str]]:
    """The HEALTHCHECK's options and its exec-form command."""
    (rest,) = instructions("HEALTHCHECK")
    options, sep, command = rest.partition("CMD ")
    assert sep, "HEALTHCHECK needs a CMD"
    return options.split(), exec_form(command)


def healthcheck_snippet() -> str:
    _, command = healthcheck()
    assert command[0].endswith("python") and command[1] == "-c", command
    return command[2]


# ---------------------------------------------------------------- the compose file


#: what `docker compose up` is run with here: the variables the README says to export
HOST_ENV = {"ALERTING_SIGNING_KEY": "a-random-signing-key-for-the-compose-test"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def interpolate(value: str, host: dict[str, str] = HOST_ENV) -> str:
    """``value`` as compose interpolates it: ``${X}``, ``${X:-default}``, ``${X:?error}``
    (compose refuses to start when X is unset or empty: KeyError here)."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if host.get(name):
            return host[name]
        if kind == "?":
            raise KeyError(f"{name}: {rest}")
        return rest if kind == "-" else ""

    return _VARIABLE.sub(one, value)


def environment(service: dict[str, Any], host: dict[str, str] = HOST_ENV) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): interpolate(str(v), host) for k, v in env.items()}


def ours(service: dict[str, Any]) -> bool:
    """Built from deploy/Dockerfile."""
    build = service.get("build")
    if build is None:
        return False
    context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
    name = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    return (context / name).resolve() == DOCKERFILE


OURS = {name: s for name, s in SERVICES.items() if ours(s)}


def argv(service: dict[str, Any]) -> list[str]:
    """What the container runs: the image's ENTRYPOINT and CMD unless compose overrides them."""
    (entrypoint,) = instructions("ENTRYPOINT")
    (cmd,) = instructions("CMD")
    first = service.get("entrypoint", exec_form(entrypoint))
    rest = service.get("command", exec_form(cmd))
    first = shlex.split(first) if isinstance(first, str) else first
    rest = shlex.split(rest) if isinstance(rest, str) else rest
    return [*first, *rest]


def detectors() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in OURS.items() if argv(s)[:2] == ["alerting", "run"]}


def effective_env(service: dict[str, Any]) -> dict[str, str]:
    """The container's environment: the image's ENV (ours), then compose's."""
    return {**(dockerfile_env() if ours(service) else {}), **environment(service)}


def load_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings `alerting` builds from that environment."""
    with monkeypatch.context() as m:
        for name, value in env.items():
            if name.startswith("ALERTING"):
                m.setenv(name, value)
        return load_settings()


def settings_of(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    return load_from(effective_env(service), monkeypatch)


def mounts(service: dict[str, Any]) -> dict[PurePosixPath, Path]:
    """Container path → host path of each bind mount (short syntax)."""
    result = {}
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), f"use the short volume syntax: {volume}"
        source, target, *_ = volume.split(":")
        assert source.startswith((".", "/")), f"{volume}: only bind mounts are expected"
        result[PurePosixPath(target)] = (ROOT / source).resolve()
    return result


def on_host(service: dict[str, Any], container_path: str) -> Path:
    """The host file behind a path inside the container (through its bind mounts)."""
    path = PurePosixPath(container_path)
    for target, source in sorted(mounts(service).items(), key=lambda kv: -len(kv[0].parts)):
        if path == target or target in path.parents:
            return source.joinpath(*path.relative_to(target).parts)
    raise AssertionError(f"{container_path} is on no bind mount of the service")


def container_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for spec in service.get("ports", []):
        ports.add(int(str(spec).split("/")[0].split(":")[-1]))
    return ports


def host_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for spec in service.get("ports", []):
        parts = str(spec).split("/")[0].split(":")
        if len(parts) >= 2:
            ports.add(int(parts[-2]))
    return ports


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    value = service.get("depends_on") or {}
    if isinstance(value, list):
        return dict.fromkeys(value, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in value.items()}


def topic_commands() -> list[dict[str, Any]]:
    """The `kafka-topics.sh --create` invocations of the topic-creation service."""
    (service,) = [s for s in SERVICES.values() if "kafka-topics.sh" in str(s.get("command"))]
    command = service["command"]
    script = "\n".join(command) if isinstance(command, list) else command
    created = []
    for line in script.splitlines():
        words = shlex.split(line)
        if not words or not words[0].endswith("kafka-topics.sh") or "--create" not in words:
            continue
        options: dict[str, Any] = {"config": {}}
        for flag, value in zip(words, [*words[1:], ""], strict=True):
            if flag == "--config":
                key, _, val = value.partition("=")
                options["config"][key] = val
            elif flag.startswith("--") and not value.startswith("--"):
                options[flag[2:]] = value
        created.append(options)
    return created


# ---------------------------------------------------------------- services and images


def test_the_expected_services_exist() -> None:
    assert {"kafka", "alerting", "replay", "prometheus", "grafana"} <= set(SERVICES)
    assert [s for s in SERVICES.values() if "kafka-topics.sh" in str(s.get("command"))]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned(name: str) -> None:
    image = SERVICES[name]["image"]
    assert not image.endswith(":latest")
    assert PINNED.match(image), f"{name}: {image} has no version tag"
    if name in OURS:
        assert image.rsplit(":", 1)[1] == PYPROJECT["project"]["version"]


def test_kafka_is_the_official_image_in_kraft_mode() -> None:
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] and env["CLUSTER_ID"]
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = {
        name: int(port)
        for name, port in re.findall(r"(\w+)://[^:,]*:(\d+)", env["KAFKA_LISTENERS"])
    }
    assert set(listeners) <= set(protocols)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    for voter in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","):
        node, _, address = voter.partition("@")
        assert node == str(env["KAFKA_NODE_ID"])
        assert int(address.rsplit(":", 1)[1]) == listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]]
    advertised = re.findall(r"(\w+)://([^:,]+):(\d+)", env["KAFKA_ADVERTISED_LISTENERS"])
    for listener, _, port in advertised:
        assert listeners[listener] == int(port), listener
    # the listener on the host-published port advertises an address the host can reach
    for listener, host, port in advertised:
        if int(port) in host_ports(kafka):
            assert host in ("localhost", "127.0.0.1"), listener


def test_services_reach_kafka_on_its_internal_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    kafka = SERVICES["kafka"]
    names = {"kafka", kafka.get("hostname", "kafka")}
    advertised = set(
        re.findall(r"\w+://([^:,]+:\d+)", environment(kafka)["KAFKA_ADVERTISED_LISTENERS"])
    )
    internal = {address for address in advertised if address.split(":")[0] in names}
    assert internal
    for name, service in OURS.items():
        servers = settings_of(service, monkeypatch).kafka.bootstrap_servers
        assert servers and set(servers.split(",")) <= internal, name
    for options in topic_commands():
        assert options["bootstrap-server"] in internal


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "name", ["Dockerfile", *sorted(n for n, s in SERVICES.items() if environment(s))]
)
def test_every_alerting_variable_is_a_setting(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = dockerfile_env() if name == "Dockerfile" else environment(SERVICES[name])
    variables = {k: v for k, v in env.items() if k.startswith("ALERTING")}
    if name in OURS or name == "Dockerfile":
        assert variables
    for variable in variables:
        assert variable.startswith(ENV_PREFIX), f"{variable}: the prefix is {ENV_PREFIX}"
        section, _, field = variable[len(ENV_PREFIX) :].lower().partition("__")
        assert section in Settings.model_fields, f"{variable}: no section {section}"
        model = Settings.model_fields[section].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        assert field in model.model_fields, f"{variable}: no setting {section}.{field}"
    # and the values are valid: the settings load from them, each one taking effect
    full = env if name == "Dockerfile" else effective_env(SERVICES[name])
    effective = load_from(full, monkeypatch).model_dump(mode="json")
    for variable, value in variables.items():
        section, _, field = variable[len(ENV_PREFIX) :].lower().partition("__")
        shown = effective[section][field]
        if shown == "**********":  # a secret: masked, so compare what was loaded
            loaded = getattr(getattr(load_from(full, monkeypatch), section), field)
            assert loaded.get_secret_value() == value, variable
            continue
        assert str(shown).lower() == value.lower(), variable


def test_the_detectors_need_a_signing_key_from_whoever_starts_compose() -> None:
    # a fixed key in the file would be no key: everybody who can read it could sign
    for name, service in detectors().items():
        with pytest.raises(KeyError, match="ALERTING_SIGNING_KEY"):
            environment(service, host={})
        assert (
            environment(service)["ALERTING__STATE__SIGNING_KEY"] == HOST_ENV["ALERTING_SIGNING_KEY"]
        ), name


def test_two_detector_replicas_in_one_group(monkeypatch: pytest.MonkeyPatch) -> None:
    found = detectors()
    replicas = sum(s.get("deploy", {}).get("replicas", 1) for s in found.values())
    assert replicas == 2
    settings = [settings_of(s, monkeypatch) for s in found.values()]
    assert len({s.service.group_id for s in settings}) == 1
    assert len({s.kafka.bootstrap_servers for s in settings}) == 1
    assert len({s.topics.events for s in settings}) == 1
    for name, service in found.items():
        if service.get("deploy", {}).get("replicas", 1) > 1:
            # a fixed name or host port would let only one replica start
            assert "container_name" not in service, name
            assert not host_ports(service), name


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_alerting_command_parses(name: str) -> None:
    command = argv(OURS[name])
    assert command[0] == "alerting"
    build_parser().parse_args(command[1:])


def test_a_replay_producer_feeds_the_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    (replay,) = [s for s in OURS.values() if argv(s)[1:2] == ["replay"]]
    args = build_parser().parse_args(argv(replay)[1:])
    assert args.synthetic and args.count == 0 and args.start_now
    producer = settings_of(replay, monkeypatch)
    for service in detectors().values():
        detector = settings_of(service, monkeypatch)
        assert producer.topics.events == detector.topics.events
        assert producer.kafka.bootstrap_servers == detector.kafka.bootstrap_servers
    # the image's health check reads /metrics, which the replay does not serve
    assert replay.get("healthcheck", {}).get("disable") is True


# ---------------------------------------------------------------- topics and start order


def test_topic_creation_matches_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    created = {options["topic"]: options for options in topic_commands()}
    for service in OURS.values():
        t = settings_of(service, monkeypatch).topics
        assert {t.events, t.alerts, t.dead_letters, t.changelog} <= set(created)
        for topic in (t.events, t.alerts, t.dead_letters, t.changelog):
            # the changelog must be co-partitioned with the events topic
            assert int(created[topic]["partitions"]) == t.partitions, topic
            assert int(created[topic]["replication-factor"]) == t.replication_factor, topic
        changelog = created[t.changelog]["config"]
        assert changelog["cleanup.policy"] == "compact"
        assert int(changelog["max.message.bytes"]) == MAX_MESSAGE_BYTES
    (init,) = [s for s in SERVICES.values() if "kafka-topics.sh" in str(s.get("command"))]
    assert init["image"] == SERVICES["kafka"]["image"]


def test_the_service_starts_after_the_topics_exist() -> None:
    (init_name,) = [n for n, s in SERVICES.items() if "kafka-topics.sh" in str(s.get("command"))]
    init = SERVICES[init_name]
    assert depends_on(init) == {"kafka": "service_healthy"}
    assert SERVICES["kafka"]["healthcheck"]["test"]
    assert init.get("restart", "no") == "no"
    for name, service in OURS.items():
        assert depends_on(service).get(init_name) == "service_completed_successfully", name


# ---------------------------------------------------------------- metrics and Prometheus


def scrape_targets() -> tuple[list[tuple[str, int]], bool]:
    """(host, port) scraped by the `alerting` job, and whether they come from DNS discovery."""
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "alerting"]
    targets = []
    for static in job.get("static_configs", []):
        for target in static["targets"]:
            host, port = target.rsplit(":", 1)
            targets.append((host, int(port)))
    for dns in job.get("dns_sd_configs", []):
        targets += [(name, int(dns["port"])) for name in dns["names"]]
    return targets, bool(job.get("dns_sd_configs")) and not job.get("static_configs")


def test_the_metrics_port_agrees_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    found = detectors()
    ports = set()
    for service in found.values():
        metrics = settings_of(service, monkeypatch).metrics
        assert metrics.enabled
        assert metrics.host == "0.0.0.0", "bind all interfaces so that Prometheus reaches it"
        ports.add(metrics.port)
    (port,) = ports
    assert str(port) in " ".join(instructions("EXPOSE")).split()
    assert f"'{port}'" in healthcheck_snippet()
    targets, _ = scrape_targets()
    assert targets
    for host, scraped in targets:
        assert host in found, f"Prometheus scrapes {host}, not a detector service"
        assert scraped == port


def test_every_service_serving_metrics_is_scraped(monkeypatch: pytest.MonkeyPatch) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    scraped = {
        (name, int(dns["port"]))
        for job in config["scrape_configs"]
        for dns in job.get("dns_sd_configs", [])
        for name in dns["names"]
    }
    serving = set()
    for name, service in OURS.items():
        if argv(service)[1] not in ("run", "forward"):  # the commands that serve /metrics
            continue
        metrics = settings_of(service, monkeypatch).metrics
        if metrics.enabled and metrics.host == "0.0.0.0":
            serving.add(name)
            assert (name, metrics.port) in scraped, f"nothing scrapes {name}:{metrics.port}"
    assert {"forward", *detectors()} <= serving


def test_each_replica_is_scraped_as_its_own_instance() -> None:
    """A static target reaches one replica per scrape, whichever the compose DNS answers
    with; DNS discovery finds every replica and scrapes each as its own instance."""
    replicated = {
        name for name, s in detectors().items() if s.get("deploy", {}).get("replicas", 1) > 1
    }
    assert replicated, "docker-compose.yml runs the detector service as several replicas"
    targets, discovered = scrape_targets()
    assert discovered, (
        "deploy/prometheus/prometheus.yml scrapes a static target, which reaches one replica "
        "per scrape; use dns_sd_configs for the `alerting` job"
    )
    assert replicated <= {host for host, _ in targets}


def test_prometheus_reads_the_shipped_config_and_rules() -> None:
    prometheus = SERVICES["prometheus"]
    flags = dict(f.split("=", 1) for f in prometheus.get("command", []) if "=" in f)
    config = flags.get("--config.file", "/etc/prometheus/prometheus.yml")
    host_config = on_host(prometheus, config)
    assert host_config == (ROOT / "deploy" / "prometheus" / "prometheus.yml").resolve()
    for rule_file in yaml.safe_load(host_config.read_text())["rule_files"]:
        container_path = PurePosixPath(config).parent / rule_file
        assert on_host(prometheus, str(container_path)).is_file(), rule_file


# ---------------------------------------------------------------- volumes and Grafana


@pytest.mark.parametrize("name", sorted(n for n, s in SERVICES.items() if s.get("volumes")))
def test_every_mounted_host_path_exists(name: str) -> None:
    for target, source in mounts(SERVICES[name]).items():
        assert source.exists(), f"{name}: {source} (mounted at {target}) is not in the repo"
        assert ROOT in source.parents, f"{name}: {source} is outside the repository"


def test_grafana_mounts_are_where_the_provisioning_expects_them() -> None:
    grafana = SERVICES["grafana"]
    env = environment(grafana)
    provisioning = on_host(grafana, env.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))
    assert provisioning == (ROOT / "deploy" / "grafana" / "provisioning").resolve()
    providers = yaml.safe_load((provisioning / "dashboards" / "alerting.yml").read_text())
    for provider in providers["providers"]:
        dashboards = on_host(grafana, provider["options"]["path"])
        assert list(dashboards.glob("*.json")), provider["options"]["path"]
    if "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH" in env:
        assert on_host(grafana, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]).is_file()
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    match = re.fullmatch(r"http://([\w-]+):(\d+)/?", source["url"])
    assert match, source["url"]
    assert match[1] in SERVICES, f"the datasource points at {match[1]}, not a compose service"
    assert int(match[2]) in container_ports(SERVICES[match[1]])
    assert int(env.get("GF_SERVER_HTTP_PORT", 3000)) in container_ports(grafana)


def test_prometheus_listens_on_its_published_port() -> None:
    prometheus = SERVICES["prometheus"]
    flags = dict(f.split("=", 1) for f in prometheus.get("command", []) if "=" in f)
    port = int(flags.get("--web.listen-address", ":9090").rsplit(":", 1)[1])
    assert port in container_ports(prometheus)


# ---------------------------------------------------------------- the Dockerfile


def test_dockerfile_base_images_are_pinned() -> None:
    stages: set[str] = set()
    for rest in instructions("FROM"):
        words = rest.split()
        image = next(w for w in words if not w.startswith("--"))
        if image not in stages:
            assert PINNED.match(image), f"FROM {image} is not pinned to a version"
            assert not image.split("@")[0].endswith(":latest")
        if len(words) >= 3 and words[-2].upper() == "AS":
            stages.add(words[-1])


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = instructions("USER")
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # the last USER is in the final stage (after its FROM)
    names = [name for name, _ in dockerfile()]
    assert len(names) - 1 - names[::-1].index("USER") > len(names) - 1 - names[::-1].index("FROM")


def test_dockerfile_entrypoint_is_the_cli() -> None:
    (entrypoint,) = instructions("ENTRYPOINT")
    assert exec_form(entrypoint) == ["alerting"]
    assert "alerting" in PYPROJECT["project"]["scripts"]
    (cmd,) = instructions("CMD")
    assert exec_form(cmd) == ["run"]
    assert dockerfile_env()["ALERTING__METRICS__HOST"] == "0.0.0.0"


def test_dockerfile_healthcheck_is_python_against_metrics() -> None:
    options, command = healthcheck()
    assert any(o.startswith("--timeout=") for o in options)
    snippet = healthcheck_snippet()
    ast.parse(snippet)
    assert "urllib" in snippet and "/metrics" in snippet
    assert command[0] == "/opt/venv/bin/python" or command[0] == "python"


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/metrics" else 404
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"alerting_broker_up 1\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[int]:
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()
            thread.join()


def _run_healthcheck(port: int) -> int:
    env = {**os.environ, "ALERTING__METRICS__PORT": str(port)}
    done = subprocess.run(
        [sys.executable, "-c", healthcheck_snippet()],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode


def test_dockerfile_healthcheck_passes_on_metrics_and_fails_without(metrics_server: int) -> None:
    assert _run_healthcheck(metrics_server) == 0
    assert _run_healthcheck(free_port()) != 0


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore's rule for a top-level path: the last matching pattern wins."""
    ignored = False
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerfile_copies_what_the_install_needs() -> None:
    dockerignore = ROOT / ".dockerignore"
    patterns = [
        line.strip()
        for line in dockerignore.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = set()
    for rest in instructions("COPY"):
        words = rest.split()
        if any(w.startswith("--from") for w in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
            copied.add(source.rstrip("/"))
    project = PYPROJECT["project"]
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.rstrip("*") for p in packages} | {"pyproject.toml", project["readme"]} <= copied
    for heavy in (".venv", ".git", "tests"):
        assert _ignored(heavy, patterns), f"{heavy} would be sent to the build"
