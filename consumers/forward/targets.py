"""Where alerts go: the targets, what each is sent, and the targets the settings name.

A target's ``url`` is redacted (credentials, query values) wherever it is logged or
stored; ``user:password@`` in a URL is sent as Basic auth.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import SecretStr

from alerting.errors import ConfigError
from alerting.settings import SIGNATURE_HEADER, Settings, check_http_url, redact_url
from consumers.forward.http import Post, post_checked, signature, urllib_post
from consumers.forward.mapping import alertmanager_alerts, short_type

CLOUDEVENTS_JSON = "application/cloudevents+json"


@dataclass(slots=True)
class Item:
    """One record of the alerts topic; ``cloudevent`` is None when it could not be read."""

    topic: str
    partition: int
    offset: int
    cloudevent: dict[str, Any] | None
    raw: bytes | None = None


def _with_credentials(url: str, headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """``url`` without its ``user:password@``, and ``headers`` with them as Basic auth.

    urllib never sends a URL's credentials (it takes them for part of the host name);
    curl and requests send them as ``Authorization: Basic``, and so do we.
    """
    parts = urllib.parse.urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, dict(headers)
    if any(name.lower() == "authorization" for name in headers):
        raise ValueError("url: has credentials and headers an Authorization: keep one of them")
    user, _, password = userinfo.partition(":")
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    basic = "Basic " + base64.b64encode(pair.encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), {
        **headers,
        "Authorization": basic,
    }


def _checked_url(url: str) -> str:
    try:
        check_http_url(url)
    except ValueError as exc:
        raise ValueError(f"url: {exc}, got {redact_url(url)!r}") from None
    return url


class Target(Protocol):
    """Where alerts go. ``send`` raises :class:`DeliveryFailed`."""

    name: str
    #: the configured URL as logged and stored: redacted (credentials, query values)
    url: str
    #: one POST for the whole batch (else one per alert)
    batched: bool
    #: attempts before an alert goes to the dead-letter log; None: retry for ever
    max_attempts: int | None

    def wants(self, item: Item) -> bool: ...

    def send(self, items: Sequence[Item]) -> None: ...


class AlertmanagerTarget:
    """Alertmanager API v2: every batch as one ``POST /api/v2/alerts``, retried for ever."""

    name = "alertmanager"
    batched = True
    max_attempts: int | None = None

    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        firing_ttl_s: float = 3600.0,
        drift_ttl_s: float = 3600.0,
        drift: bool = True,
        post: Post = urllib_post,
        clock: Callable[[], float] = time.time,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s: must be > 0, got {timeout_s}")
        base, sent_headers = _with_credentials(_checked_url(url), headers or {})
        parts = urllib.parse.urlsplit(base)  # the API path goes before a query (a token)
        self.url = redact_url(url)
        self.endpoint = urllib.parse.urlunsplit(
            parts._replace(path=parts.path.rstrip("/") + "/api/v2/alerts")
        )
        self.timeout_s = timeout_s
        self.firing_ttl_s = firing_ttl_s
        self.drift_ttl_s = drift_ttl_s
        self.drift = drift
        self.post = post
        self.clock = clock
        self.headers = {"Content-Type": "application/json", **sent_headers}

    def payload(self, items: Sequence[Item]) -> list[dict[str, Any]]:
        now = datetime.fromtimestamp(self.clock(), UTC)
        out: list[dict[str, Any]] = []
        for item in items:
            if item.cloudevent is not None:
                out += alertmanager_alerts(
                    item.cloudevent, now, self.firing_ttl_s, self.drift_ttl_s, self.drift
                )
        return out

    def wants(self, item: Item) -> bool:
        # exactly the alerts alertmanager_alerts maps to something (without mapping them)
        if item.cloudevent is None:
            return False
        kind = short_type(item.cloudevent)
        return kind != "other" and (self.drift or kind != "drift")

    def send(self, items: Sequence[Item]) -> None:
        body = json.dumps(self.payload(items)).encode()
        post_checked(self.post, self.endpoint, body, self.headers, self.timeout_s)


class WebhookTarget:
    """Any HTTP endpoint: each CloudEvent as its own structured-mode POST."""

    name = "webhook"
    batched = False

    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        max_attempts: int = 5,
        drift: bool = True,
        post: Post = urllib_post,
        headers: Mapping[str, str] | None = None,
        secret: bytes | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s: must be > 0, got {timeout_s}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts: must be ≥ 1, got {max_attempts}")
        self.endpoint, sent_headers = _with_credentials(_checked_url(url), headers or {})
        self.url = redact_url(url)
        self.timeout_s = timeout_s
        self.max_attempts: int | None = max_attempts
        self.drift = drift
        self.post = post
        self.headers = {"Content-Type": CLOUDEVENTS_JSON, **sent_headers}
        self.secret = secret or None

    def wants(self, item: Item) -> bool:
        if item.cloudevent is None:
            return False
        return self.drift or short_type(item.cloudevent) != "drift"

    def send(self, items: Sequence[Item]) -> None:
        for item in items:
            body = json.dumps(item.cloudevent, separators=(",", ":")).encode()
            headers = self.headers
            if self.secret is not None:
                headers = {**headers, SIGNATURE_HEADER: signature(self.secret, body)}
            post_checked(self.post, self.endpoint, body, headers, self.timeout_s)


def _revealed(headers: Mapping[str, SecretStr]) -> dict[str, str]:
    return {name: value.get_secret_value() for name, value in headers.items()}


def build_targets(settings: Settings) -> list[Target]:
    """The targets the settings name; ConfigError if none or one is wrong."""
    f = settings.forward
    targets: list[Target] = []
    try:
        if f.alertmanager_url:
            targets.append(
                AlertmanagerTarget(
                    f.alertmanager_url,
                    timeout_s=f.timeout_s,
                    firing_ttl_s=f.firing_ttl_s,
                    drift_ttl_s=f.drift_ttl_s,
                    drift=f.drift == "alert",
                    headers=_revealed(f.alertmanager_headers),
                )
            )
        if f.webhook_url:
            targets.append(
                WebhookTarget(
                    f.webhook_url,
                    timeout_s=f.timeout_s,
                    max_attempts=f.max_attempts,
                    drift=f.drift == "alert",
                    headers=_revealed(f.webhook_headers),
                    secret=(
                        f.webhook_secret.get_secret_value().encode() if f.webhook_secret else None
                    ),
                )
            )
    except ValueError as exc:
        raise ConfigError(f"forward settings: {exc}") from None
    if not targets:
        raise ConfigError(
            "nothing to forward to: give --alertmanager URL and/or --webhook URL "
            "(forward.alertmanager_url / forward.webhook_url, "
            "ALERTING__FORWARD__ALERTMANAGER_URL / ALERTING__FORWARD__WEBHOOK_URL)"
        )
    return targets
