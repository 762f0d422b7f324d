"""The forwarding loop: poll the alerts topic, deliver each batch to every target, commit.

The offsets are committed only once every target accepted the batch (or, for a webhook,
an alert went to the dead-letter log), so a crash or a stop forwards the batch again:
at-least-once. While a target that retries for ever is down, the batch is held back and
the consumer stays in its group. ``forward`` runs it on the configured cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from alerting.errors import ConfigError, DeliveryFailed
from alerting.metrics import Metrics
from alerting.retry import Backoff
from alerting.settings import Settings, redact_url
from consumers.forward.deadletters import DeadLetterLog
from consumers.forward.mapping import short_type
from consumers.forward.targets import Item, Target, build_targets
from consumers.subscriber import decode_cloudevent

log = logging.getLogger("consumers.forward")  # one logger for the package's log lines


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


# ---------------------------------------------------------------- the command


def forward(
    settings: Settings, metrics: Metrics, install_signals: Callable[[Forwarder], object]
) -> int:
    """Run the forwarder on the configured cluster until stopped."""
    from consumers.kafka_python import GroupSource, consumer_for

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
        GroupSource(consumer, settings.topics.alerts),
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
