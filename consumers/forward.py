"""Forward alerts to Alertmanager and webhooks: ``alerting forward``.

Reads the alerts topic in its own consumer group (``forward.group_id``) and delivers
each batch to every target; the offsets are committed only once every target accepted
the batch (or, for a webhook, an alert went to the dead-letter log), so a crash or a
stop forwards the batch again: at-least-once. Receivers deduplicate on the CloudEvent
``id`` (webhooks) or on the label set (Alertmanager does so by itself).

- Alertmanager (API v2, ``POST /api/v2/alerts``): firing and resolved alerts, drift as
  a warning alert ``Drift`` (``forward.drift = "skip"`` leaves them out). While it is
  unreachable or failing (connection, timeout, 5xx, 429) the batch is retried with
  exponential backoff for as long as it takes, and nothing is committed. An alert it
  rejects (another 4xx: it can never be accepted) goes to the dead-letter log.
- Webhook: every CloudEvent as its own ``POST`` (structured mode, content type
  ``application/cloudevents+json``), ``forward.max_attempts`` attempts, then the alert
  goes to the dead-letter log (JSON Lines, ``forward.dead_letter_path``) and the
  forwarder moves on.

Redirects are never followed (urllib would turn the POST into a body-less GET to
another origin, with the credentials and the signature): a 3xx is a failed delivery
(``redirected``), retried like a 5xx. URLs are redacted (``redact_url``) wherever they
are logged or stored, and ``user:password@`` in a URL is sent as Basic auth.

Errors::

    DeliveryFailed     one POST failed: ``reason`` (connection, timeout, server_error,
                       throttled, redirected, rejected) and whether retrying can help
    AlertingError      the dead-letter log cannot be written (the forwarder stops
                       rather than commit an alert it could not keep)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import SecretStr

from alerting.alerts import DRIFT, FIRING, RESOLVED
from alerting.errors import AlertingError, ConfigError, DeliveryFailed
from alerting.metrics import Metrics
from alerting.retry import Backoff
from alerting.settings import (
    SIGNATURE_HEADER,
    Settings,
    check_http_url,
    redact_url,
    redact_url_secrets,
)
from alerting.silences import SEVERITIES
from alerting.times import rfc3339, rfc3339_or_none, rfc3339_seconds
from consumers.subscriber import decode_cloudevent

log = logging.getLogger(__name__)

ANOMALY_ALERTNAME = "Anomaly"
DRIFT_ALERTNAME = "Drift"
CLOUDEVENTS_JSON = "application/cloudevents+json"
_SHORT_TYPES = {FIRING: "firing", RESOLVED: "resolved", DRIFT: "drift"}


def short_type(cloudevent: Mapping[str, Any]) -> str:
    """``firing``, ``resolved``, ``drift`` or ``other``: the metric label of an alert type.

    >>> short_type({"type": "io.alerting.anomaly.resolved"}), short_type({"type": "x"})
    ('resolved', 'other')
    """
    return _SHORT_TYPES.get(str(cloudevent.get("type", "")), "other")


# ---------------------------------------------------------------- Alertmanager mapping


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def alertmanager_alerts(
    cloudevent: Mapping[str, Any],
    now: datetime,
    firing_ttl_s: float = 3600.0,
    drift_ttl_s: float = 3600.0,
    drift: bool = True,
) -> list[dict[str, Any]]:
    """The Alertmanager API v2 alerts for one CloudEvent (empty: nothing to send).

    Firing: one alert, ``startsAt`` the episode start, ``endsAt`` ``now + firing_ttl_s``
    (a repeat notification extends it; an alert whose resolve never comes expires). An
    escalated one also resolves the warning label set. Resolved: the episode's label
    sets of both severities, ``endsAt`` the resolve time. Drift: a warning ``Drift``
    alert active for ``drift_ttl_s``. Times past ``now`` are clamped to it (clock skew).

    >>> now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    >>> ce = {"type": "io.alerting.anomaly.resolved", "subject": "AAPL", "severity": "critical",
    ...       "time": "2026-01-01T11:00:30Z", "id": "r1",
    ...       "data": {"detector": "zscore", "event_kind": "trade", "firing_id": "f1",
    ...                "started_at": "2026-01-01T11:00:00Z", "duration_s": 30.0}}
    >>> for a in alertmanager_alerts(ce, now):
    ...     print(a["labels"]["severity"], a["startsAt"], a["endsAt"])
    warning 2026-01-01T11:00:00Z 2026-01-01T11:00:30Z
    critical 2026-01-01T11:00:00Z 2026-01-01T11:00:30Z
    """
    kind = short_type(cloudevent)
    if kind == "other" or (kind == "drift" and not drift):
        return []
    data = cloudevent.get("data") or {}
    if not isinstance(data, Mapping):
        data = {}
    at = rfc3339_or_none(cloudevent.get("time")) or now
    started = rfc3339_or_none(data.get("started_at")) or at
    severity = str(cloudevent.get("severity") or data.get("severity") or "warning")
    labels = {
        "alertname": DRIFT_ALERTNAME if kind == "drift" else ANOMALY_ALERTNAME,
        "entity": str(cloudevent.get("subject") or ""),
        "severity": "warning" if kind == "drift" else severity,
        "detector": str(data.get("detector") or ""),
        "event_kind": str(data.get("event_kind") or ""),
    }
    labels = {k: v for k, v in labels.items() if v}  # an empty value is no label
    annotations = {
        "summary": str(data.get("summary") or ""),
        "score": _number(data.get("score", "")),
        "threshold": _number(data.get("threshold", "")),
        "firing_id": str(data.get("firing_id") or ""),
        "alert_id": str(cloudevent.get("id") or ""),
        "model_version": str(data.get("model_version") or ""),
        "notification": str(data.get("notification") or "") if kind == "firing" else "",
        "duration_s": _number(data["duration_s"]) if "duration_s" in data else "",
    }
    annotations = {k: v for k, v in annotations.items() if v}

    def ended(moment: datetime) -> str:
        return rfc3339(max(started, min(moment, now)))

    def alert(labels: dict[str, str], ends: datetime | str) -> dict[str, Any]:
        ends_text = ends if isinstance(ends, str) else rfc3339(max(ends, started))
        return {
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(started),
            "endsAt": ends_text,
        }

    if kind == "firing":
        out = [alert(labels, now + timedelta(seconds=firing_ttl_s))]
        if data.get("notification") == "escalated" and severity == "critical":
            out.append(alert({**labels, "severity": "warning"}, ended(at)))
        return out
    if kind == "resolved":
        return [alert({**labels, "severity": s}, ended(at)) for s in SEVERITIES]
    return [alert(labels, max(at, now) + timedelta(seconds=drift_ttl_s))]


# ---------------------------------------------------------------- HTTP and targets


def signature(secret: bytes, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body``: ``sha256=`` and the hex HMAC.

    A receiver recomputes it over the raw request body and compares in constant time:

    >>> body = b'{"id":"1"}'
    >>> received = signature(b"key", body)
    >>> hmac.compare_digest(received, signature(b"key", body)), received[:15]
    (True, 'sha256=77cb8fd1')
    """
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


#: POST ``body`` to ``url`` with ``headers``, never following a redirect; returns (status,
#: start of the response body; for a 3xx where it points, as an origin only) and raises
#: OSError (urllib.error.URLError, TimeoutError, ...) when no answer came
Post = Callable[[str, bytes, Mapping[str, str], float], tuple[int, str]]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Hand every 3xx back as the answer instead of following it.

    urllib follows a 302 by sending a body-less GET, with our Authorization header and
    signature, to wherever Location points (another origin too), and returns that GET's
    200: the alert lost, counted as sent, its credentials handed over.
    """

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> None:
        return None  # urllib then raises HTTPError with the 3xx


_OPENER = urllib.request.build_opener(_NoRedirects)


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: where it goes, without what it carries.

    >>> origin("https://user:pw@hooks.example.com:8443/alerts?token=t0k")
    'https://hooks.example.com:8443'
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _redirect_text(url: str, location: str | None) -> str:
    # the origin only: the Location (which a 3xx's body usually repeats) may carry secrets
    if not location:
        return "redirect without a Location (not followed)"
    try:
        target = urllib.parse.urljoin(url, location)
    except ValueError:
        return "redirect to an unreadable Location (not followed)"
    return f"redirect to {origin(target)} (not followed)"


def urllib_post(
    url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
) -> tuple[int, str]:
    """:data:`Post` on the standard library."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            return int(response.status), response.read(300).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        with exc:
            if 300 <= exc.code < 400:
                return int(exc.code), _redirect_text(url, exc.headers.get("Location"))
            text = exc.read(300).decode(errors="replace") if exc.fp is not None else ""
            return int(exc.code), text


def post_checked(
    post: Post, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
) -> None:
    """POST and raise :class:`DeliveryFailed` unless the answer is 2xx.

    A 3xx is a failure (``redirected``, retryable, as a moved endpoint can move back);
    the request never goes where it points. The detail never holds the URL's secrets:
    servers echo the URL in their error pages, http.client in its exceptions.
    """
    try:
        _post_checked(post, url, body, headers, timeout_s)
    except DeliveryFailed as exc:
        detail = redact_url_secrets(exc.detail, url)
        raise DeliveryFailed(exc.reason, detail, exc.retryable) from None


def _post_checked(
    post: Post, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
) -> None:
    try:
        status, text = post(url, body, headers, timeout_s)
    except TimeoutError as exc:
        raise DeliveryFailed("timeout", f"no answer within {timeout_s:g}s ({exc})", True) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            raise DeliveryFailed("timeout", f"no answer within {timeout_s:g}s", True) from None
        raise DeliveryFailed("connection", str(reason), True) from None
    # ConnectionResetError, RemoteDisconnected, IncompleteRead, InvalidURL, ...
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise DeliveryFailed("connection", f"{type(exc).__name__}: {exc}", True) from None
    if 200 <= status < 300:
        return
    detail = f"HTTP {status} {text.strip()[:200]}".strip()
    if 300 <= status < 400:
        raise DeliveryFailed("redirected", detail, True)
    if status in (408, 429):
        raise DeliveryFailed("throttled", detail, True)
    if status >= 500:
        raise DeliveryFailed("server_error", detail, True)
    raise DeliveryFailed("rejected", detail, False)


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


# ---------------------------------------------------------------- dead letters


class DeadLetterLog:
    """Alerts that could not be delivered, one JSON object per line, appended and synced."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock

    def check(self) -> None:
        """Raise :class:`AlertingError` now if the file cannot be appended to."""
        try:
            with open(self.path, "a"):
                pass
        except OSError as exc:
            raise AlertingError(
                f"cannot open the dead-letter log {self.path} ({exc.strerror}); set "
                "forward.dead_letter_path (ALERTING__FORWARD__DEAD_LETTER_PATH) or "
                "--dead-letters to a writable file"
            ) from None

    def write(
        self, target: Target | None, item: Item, reason: str, detail: str, attempts: int
    ) -> None:
        entry: dict[str, Any] = {
            "time": rfc3339_seconds(self.clock()),
            "target": target.name if target is not None else None,
            "url": redact_url(target.url) if target is not None else None,
            "reason": reason,
            "detail": detail,
            "attempts": attempts,
            "topic": item.topic,
            "partition": item.partition,
            "offset": item.offset,
            "alert": item.cloudevent,
        }
        if item.cloudevent is None:
            entry["raw"] = (item.raw or b"").decode(errors="replace")
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        try:
            with open(self.path, "a") as out:
                out.write(line)
                out.flush()
                os.fsync(out.fileno())  # on disk before the offset is committed
        except OSError as exc:
            raise AlertingError(
                f"cannot write the dead-letter log {self.path} ({exc.strerror}); nothing "
                "was committed: fix it or set forward.dead_letter_path"
            ) from None


# ---------------------------------------------------------------- the loop


class Source(Protocol):
    """The alerts topic, as the forwarder needs it."""

    def poll(self, max_records: int, timeout_ms: int) -> Sequence[Any]:
        """Records with kafka-python's attribute names (topic, partition, offset, value)."""
        ...

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None: ...

    def keepalive(self) -> None:
        """Stay in the group while a batch is held back (no record may be skipped)."""
        ...

    def close(self) -> None: ...


#: deliveries retried after 0.5 s, doubling up to 30 s
DEFAULT_BACKOFF = Backoff()

Outcome = Literal["delivered", "stopped", "rejected", "exhausted"]


class Forwarder:
    """Poll the alerts topic, deliver each batch to every target, then commit."""

    def __init__(
        self,
        source: Source,
        targets: Sequence[Target],
        dead_letters: DeadLetterLog,
        metrics: Metrics,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_batch: int = 500,
        poll_timeout_ms: int = 500,
        wait: Callable[[float], bool] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not targets:
            raise ValueError("targets: at least one (--alertmanager URL or --webhook URL)")
        if max_batch < 1:
            raise ValueError(f"max_batch: must be ≥ 1, got {max_batch}")
        self.source = source
        self.targets = list(targets)
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.backoff = backoff
        self.max_batch = max_batch
        self.poll_timeout_ms = poll_timeout_ms
        self.stop = threading.Event()
        #: waits ``seconds`` unless stopped first; returns True when stopped
        self.wait = wait if wait is not None else self.stop.wait
        self.monotonic = monotonic
        self._down_since: dict[str, float] = {}
        self.batches = 0
        for target in self.targets:
            metrics.forward_up.labels(target=target.name).set(1)

    def run(self) -> None:
        """Forward until :attr:`stop` is set, then close the source."""
        names = ", ".join(f"{t.name} {redact_url(t.url)}" for t in self.targets)
        log.info("forwarding alerts to %s", names)
        try:
            while not self.stop.is_set():
                self.run_once()
        finally:
            self.source.close()
            log.info("forwarder stopped after %d batches", self.batches)

    def run_once(self) -> int:
        """Poll one batch, deliver it to every target, commit; the number of records."""
        try:
            records = self.source.poll(self.max_batch, self.poll_timeout_ms)
        except Exception as exc:  # broker trouble: the loop must survive it
            self.metrics.forward_errors.labels(target="kafka", reason="poll").inc()
            log.warning("polling the alerts topic failed (%s); retrying", exc)
            self.wait(self.backoff.initial_s)
            return 0
        if not records:
            return 0
        items = [self._item(r) for r in records]
        for item in items:
            if item.cloudevent is None:
                self.dead_letters.write(
                    None, item, "undecodable", "not a CloudEvent JSON object", 0
                )
                self.metrics.forward_dead_letters.labels(target="none", reason="undecodable").inc()
        for target in self.targets:
            if not self._deliver(target, [i for i in items if target.wants(i)]):
                log.info(
                    "stopping with %d records not yet forwarded to %s; they are forwarded "
                    "again at the next start (offsets not committed)",
                    len(items),
                    target.name,
                )
                return len(records)
        offsets: dict[tuple[str, int], int] = {}
        for item in items:
            key = (item.topic, item.partition)
            offsets[key] = max(offsets.get(key, 0), item.offset + 1)
        try:
            self.source.commit(offsets)
        except Exception as exc:  # e.g. a rebalance took the partitions: forwarded again
            self.metrics.forward_errors.labels(target="kafka", reason="commit").inc()
            log.warning("commit failed (%s); these alerts may be forwarded again", exc)
        self.batches += 1
        return len(records)

    @staticmethod
    def _item(record: Any) -> Item:
        value = record.value
        cloudevent = decode_cloudevent(value)
        if cloudevent is not None and not isinstance(cloudevent.get("type"), str):
            cloudevent = None
        return Item(record.topic, record.partition, record.offset, cloudevent, value)

    def _deliver(self, target: Target, items: list[Item]) -> bool:
        """Deliver ``items`` or dead-letter them; False if stopped before the end."""
        queue = [items] if target.batched and items else [[i] for i in items]
        while queue:
            group = queue.pop(0)
            outcome, attempts, error = self._attempt(target, group)
            if outcome == "stopped":
                return False
            if outcome == "delivered":
                for item in group:
                    kind = short_type(item.cloudevent or {})
                    self.metrics.forward_sent.labels(target=target.name, type=kind).inc()
                continue
            if outcome == "rejected" and len(group) > 1:
                queue[0:0] = [[i] for i in group]  # find the alert it refuses
                continue
            assert error is not None
            for item in group:
                self.dead_letters.write(target, item, error.reason, error.detail, attempts)
                self.metrics.forward_dead_letters.labels(
                    target=target.name, reason=error.reason
                ).inc()
            log.warning(
                "%s %s: alert at %s/%d/%d to the dead-letter log %s after %d attempt(s): %s",
                target.name,
                redact_url(target.url),
                group[0].topic,
                group[0].partition,
                group[0].offset,
                self.dead_letters.path,
                attempts,
                error,
            )
        return True

    def _attempt(
        self, target: Target, group: list[Item]
    ) -> tuple[Outcome, int, DeliveryFailed | None]:
        attempt = 0
        while True:
            attempt += 1
            try:
                target.send(group)
            except DeliveryFailed as exc:
                self.metrics.forward_errors.labels(target=target.name, reason=exc.reason).inc()
                if not exc.retryable:
                    return "rejected", attempt, exc
                self._went_down(target, exc, len(group))
                if target.max_attempts is not None and attempt >= target.max_attempts:
                    return "exhausted", attempt, exc
                if self._pause(self.backoff.delay(attempt)):
                    return "stopped", attempt, exc
                continue
            self._came_up(target, len(group))
            return "delivered", attempt, None

    def _went_down(self, target: Target, error: DeliveryFailed, held: int) -> None:
        if target.name in self._down_since:
            log.debug("%s %s still failing: %s", target.name, redact_url(target.url), error)
            return
        self._down_since[target.name] = self.monotonic()
        self.metrics.forward_up.labels(target=target.name).set(0)
        if target.max_attempts is None:
            log.warning(
                "%s %s is unreachable (%s): holding %d alert(s), retrying with backoff; "
                "nothing is committed until it accepts them",
                target.name,
                redact_url(target.url),
                error,
                held,
            )
        else:
            log.warning(
                "%s %s is failing (%s): retrying each alert up to %d attempts, then the "
                "dead-letter log %s",
                target.name,
                redact_url(target.url),
                error,
                target.max_attempts,
                self.dead_letters.path,
            )

    def _came_up(self, target: Target, delivered: int) -> None:
        since = self._down_since.pop(target.name, None)
        if since is None:
            return
        self.metrics.forward_up.labels(target=target.name).set(1)
        log.info(
            "%s %s is back after %.1fs: delivering again (%d alert(s) just accepted)",
            target.name,
            redact_url(target.url),
            self.monotonic() - since,
            delivered,
        )

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` in steps of at most 1 s, staying in the group; True if stopped."""
        remaining = seconds
        while remaining > 0:
            step = min(remaining, 1.0)
            if self.wait(step):
                return True
            remaining -= step
            try:
                self.source.keepalive()
            except Exception as exc:
                log.debug("keepalive poll failed: %s", exc)
        return self.stop.is_set()


# ---------------------------------------------------------------- Kafka source


class KafkaSource:
    """The alerts topic in the forwarder's consumer group, on kafka-python."""

    def __init__(self, consumer: Any, topic: str) -> None:
        self.consumer = consumer
        self.consumer.subscribe([topic])

    def poll(self, max_records: int, timeout_ms: int) -> Sequence[Any]:
        from consumers.kafka_python import records_of

        return records_of(self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records))

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        from consumers.kafka_python import commit_offsets

        commit_offsets(self.consumer, offsets)

    def keepalive(self) -> None:
        # a poll with every partition paused keeps max_poll_interval_ms from expiring;
        # a record it still returns (a partition assigned just now) is read again later
        assigned = list(self.consumer.assignment())
        self.consumer.pause(*assigned)
        try:
            batches = self.consumer.poll(timeout_ms=0)
            for tp, records in batches.items():
                if records:
                    self.consumer.seek(tp, min(r.offset for r in records))
        finally:
            self.consumer.resume(*self.consumer.paused())

    def close(self) -> None:
        self.consumer.close(autocommit=False)


# ---------------------------------------------------------------- the command


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


def forward(
    settings: Settings, metrics: Metrics, install_signals: Callable[[Forwarder], object]
) -> int:
    """Run the forwarder on the configured cluster until stopped."""
    from consumers.kafka_python import consumer_for

    f = settings.forward
    targets = build_targets(settings)
    dead_letters = DeadLetterLog(f.dead_letter_path)
    dead_letters.check()
    try:
        backoff = Backoff(f.backoff_s, max(f.max_backoff_s, f.backoff_s))
    except ValueError as exc:
        raise ConfigError(f"forward settings: {exc}") from None
    consumer = consumer_for(settings, f.group_id)
    forwarder = Forwarder(
        KafkaSource(consumer, settings.topics.alerts),
        targets,
        dead_letters,
        metrics,
        backoff=backoff,
        max_batch=f.max_batch_records,
    )
    install_signals(forwarder)
    log.info(
        "reading %s as group %s from %s; dead letters to %s",
        settings.topics.alerts,
        f.group_id,
        settings.kafka.bootstrap_servers,
        dead_letters.path,
    )
    forwarder.run()
    return 0
