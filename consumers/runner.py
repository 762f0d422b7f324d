"""The consume loop: poll → decode → dead-letter or process → publish → checkpoint.

Delivery is at-least-once, in this order:

1. each batch's alerts and dead letters are published and acknowledged by the broker
   (retried, with a clear log line, until they are or the service is told to stop);
   a message the broker or client refuses for good (too large, invalid, not authorised:
   :func:`consumers.port.permanent_reason`) is tried ``max_refused_attempts`` times in
   all, then skipped, logged and counted (``alerting_publish_skipped_total``), and a dead
   letter refused whole is first sent again as a stub
   (:func:`producers.dead_letters.stub`): no record can stop the loop;
2. every ``commit_interval_s``, a *checkpoint*: the snapshots of the entities changed
   since the last one are written to the changelog and acknowledged;
3. then the offsets are committed.

A crash anywhere re-reads events from the last committed offset with the entity states
of the last snapshot; a snapshot records the source offset it includes, so an event it
already holds is skipped rather than learned twice. With a deterministic detector the
alerts after a restart are the same, with the same ids, as without the crash.

On partition assignment the changelog partitions are restored before any event of them
is processed; on revocation a checkpoint is taken and the partitions' state dropped.
The processor's counts are drained into the metrics once per batch, not per event; its
gauges (live models, warm-up, newest event time) are read at scrape time.

Before decoding, a record whose value is over ``max_event_bytes`` is dead-lettered as a
stub (reason ``too_large``); after, an event dated more than ``max_time_ahead_s`` ahead
of the injected wall clock (read once per batch) is dead-lettered (``future_time``): one
such event would otherwise move event time ahead and expire every entity.

Records are decoded as native events (:func:`alerting.events.decode`) unless the loop is
given a ``decoder``: the compiled mapping of a declared input
(:meth:`alerting.mapping.InputMapping.decode`), which also reads the record's key,
timestamp and headers. A record it refuses is dead-lettered like any invalid one, with
the mapping's reason and detail (``missing field data.p in input desk.trades``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Protocol

from alerting.alerts import Alert, SourcePosition
from alerting.errors import InvalidEvent
from alerting.events import Event, decode
from alerting.metrics import Metrics
from alerting.processor import Processor
from alerting.records import InputRecord, Outgoing, UnreadableRecord
from consumers.port import DeliveryError, Port, Refusal
from producers.dead_letters import dead_letter, is_stub, stub

log = logging.getLogger(__name__)

#: a declared input's decoder: (value, key, timestamp_ms, headers) → Event, or InvalidEvent
Decoder = Callable[
    [bytes | None, bytes | None, int | None, Sequence[tuple[str, bytes | None]]], Event
]


class AlertHook(Protocol):
    """Silences and feedback (:class:`consumers.control.hook.AlertControl`) on the loop's thread."""

    def admit(self, alert: Alert) -> bool:
        """Whether ``alert`` is published (False: silenced, counted by the hook)."""
        ...

    def end_batch(self, processor: Processor) -> None:
        """Once per batch: flush counts, apply feedback penalties to ``processor``."""
        ...


@dataclass(frozen=True, slots=True)
class LoopConfig:
    alerts_topic: str
    dead_letter_topic: str
    max_batch_records: int = 2000
    poll_timeout_ms: int = 200
    delivery_timeout_s: float = 30.0
    retry_backoff_s: float = 1.0
    changelog_topic: str | None = None  # None: no snapshots (state lives in memory only)
    commit_interval_s: float = 0.0  # 0: checkpoint after every batch
    max_event_bytes: int | None = None  # larger values are stubbed undecoded; None: no bound
    max_time_ahead_s: float | None = None  # later event times are refused; None: no bound
    max_refused_attempts: int = 3  # a message refused for good is skipped after this many
    decoder: Decoder | None = None  # a declared input's mapping; None: the native schema


class Service:
    """Runs the consume loop until ``stop`` is set."""

    def __init__(
        self,
        port: Port,
        processor: Processor,
        metrics: Metrics,
        config: LoopConfig,
        clock: Callable[[], float] = time.time,
        model_bytes: int = 0,
        control: AlertHook | None = None,
    ) -> None:
        self.port = port
        self.control = control
        self.processor = processor
        self.metrics = metrics
        self.config = config
        self.clock = clock
        metrics.follow(processor, model_bytes)
        self.stop = threading.Event()
        self.batches = 0
        self._pending: dict[tuple[str, int], int] = {}  # processed, not yet committed
        # set when output was left unacknowledged at stop: from then on nothing may be
        # snapshotted or committed, or the restart would skip events whose alerts were lost
        self._abandoned = False
        self._last_checkpoint = time.monotonic()
        # input partitions whose changelog restore failed: paused, retried from the loop
        self._unrestored: set[int] = set()
        self._restore_retry = 0.0
        register = getattr(port, "on_rebalance", None)
        if register is not None:
            register(self._assigned, self._revoked)

    def run(self) -> None:
        """Process batches until :attr:`stop` is set, then close the port."""
        log.info("detector service started")
        try:
            while not self.stop.is_set():
                self.run_once()
            self.checkpoint()
        except BaseException:
            # a batch may be half done: the revocation inside close() must not snapshot
            # or commit it (nor fail on a closed producer and hide this error)
            self._abandoned = True
            raise
        finally:
            self.port.close()
            log.info("detector service stopped after %d batches", self.batches)

    def run_once(self) -> int:
        """Poll, process, publish and commit one batch; the number of records read."""
        cfg = self.config
        self._retry_restore()
        try:
            records = self.port.poll(cfg.max_batch_records, cfg.poll_timeout_ms)
        except Exception as exc:  # the loop must survive any broker trouble
            self.metrics.broker_errors.labels(operation="poll").inc()
            log.warning("poll failed (%s); retrying in %.1fs", exc, cfg.retry_backoff_s)
            self.stop.wait(cfg.retry_backoff_s)
            return 0
        if not records:
            if self.control is not None:
                self.control.end_batch(self.processor)  # penalties, even while idle
            if self._pending and time.monotonic() - self._last_checkpoint >= cfg.commit_interval_s:
                self.checkpoint()  # idle: make what was processed durable
            self._update_lag()
            return 0
        started = time.perf_counter()
        outgoing, alert_times, offsets = self._process(records)
        m = self.metrics
        m.batch_seconds.observe(time.perf_counter() - started)
        m.batch_size.observe(len(records))
        m.events_consumed.inc(len(records))

        if outgoing:
            published = time.perf_counter()
            skipped = self._publish(outgoing)
            if skipped is None:
                self._abandoned = True  # stopping with unacknowledged output: commit nothing
                return len(records)
            m.publish_seconds.observe(time.perf_counter() - published)
            acked = self.clock()
            lost = {id(message) for message in skipped}
            for message, record_ms, alert_type, severity in alert_times:
                if id(message) in lost:
                    continue  # refused for good: neither published nor acknowledged
                m.end_to_end.observe(max(acked - record_ms / 1000.0, 0.0))
                m.alerts.labels(type=alert_type, severity=severity).inc()
        self._pending.update(offsets)
        self.processor.end_batch()
        if self.control is not None:
            self.control.end_batch(self.processor)
        if time.monotonic() - self._last_checkpoint >= cfg.commit_interval_s:
            self.checkpoint()
        self._flush_counts()
        self._update_lag()
        self.batches += 1
        return len(records)

    def checkpoint(self) -> bool:
        """Snapshot changed entities to the changelog, then commit; False if stopped first."""
        if self._abandoned:
            return False
        self._last_checkpoint = time.monotonic()
        started = time.perf_counter()
        topic = self.config.changelog_topic
        store = self.processor.store
        retired = store.retire()  # idle past state.retention_s: gone here, tombstoned there
        if topic is not None:
            snapshots = [
                Outgoing(topic, entity.encode(), blob, partition=partition)
                for entity, partition, blob in store.snapshots()
                if partition >= 0
            ]
            tombstones = [
                Outgoing(topic, entity.encode(), None, partition=partition)
                for entity, partition in retired
                if partition >= 0
            ]
            if snapshots or tombstones:
                if self._publish(snapshots + tombstones) is None:
                    self._abandoned = True
                    return False
                self.metrics.snapshots.inc(len(snapshots))
                self.metrics.snapshot_bytes.inc(sum(len(s.value or b"") for s in snapshots))
                self.metrics.snapshot_seconds.observe(time.perf_counter() - started)
        self.metrics.entities_expired.inc(len(retired))
        self.metrics.entities_stored.set(store.stored)
        if self._pending:
            self._commit(self._pending)
            self._pending = {}
        stats = self.processor.threshold_stats()
        if stats is not None:
            for name, value in zip(("min", "p50", "max"), stats, strict=True):
                self.metrics.threshold.labels(stat=name).set(value)
        return True

    def _revoked(self, partitions: set[int]) -> None:
        if self._unrestored & partitions:  # never processed here: nothing to make durable
            self.port.resume(self._unrestored & partitions)
            self._unrestored -= partitions
        # still the owner: make the state and offsets of everything processed durable
        self.checkpoint()
        self.processor.store.drop_partitions(partitions)
        for partition in partitions:  # no stale lag for partitions another process now owns
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(str(partition))
        self._flush_counts()

    def _assigned(self, partitions: set[int]) -> None:
        topic = self.config.changelog_topic
        if topic is None or not partitions:
            return
        try:
            self._restore(topic, partitions)
        except Exception as exc:  # the broker, not a record: try again, process nothing yet
            self.metrics.broker_errors.labels(operation="restore").inc()
            log.error(
                "restoring partitions %s from %s failed (%s); they are paused until their "
                "state is restored (retried every %.1fs)",
                sorted(partitions),
                topic,
                exc,
                self.config.retry_backoff_s,
            )
            self.processor.store.drop_partitions(partitions)  # nothing half-restored
            self._unrestored |= partitions
            self.port.pause(partitions)
            self._restore_retry = time.monotonic() + self.config.retry_backoff_s

    def _retry_restore(self) -> None:
        """Restore the partitions whose restore failed, and resume them once it succeeds."""
        topic = self.config.changelog_topic
        if not self._unrestored or topic is None or time.monotonic() < self._restore_retry:
            return
        partitions = set(self._unrestored)
        try:
            self._restore(topic, partitions)
        except Exception as exc:
            self.metrics.broker_errors.labels(operation="restore").inc()
            log.warning("restoring partitions %s still fails (%s)", sorted(partitions), exc)
            self.processor.store.drop_partitions(partitions)
            self._restore_retry = time.monotonic() + self.config.retry_backoff_s
            return
        self._unrestored -= partitions
        self.port.resume(partitions)
        log.info("partitions %s restored: resumed", sorted(partitions))

    def _restore(self, topic: str, partitions: set[int]) -> None:
        m, store = self.metrics, self.processor.store
        started = time.perf_counter()
        restored = refused = 0
        log.info("restoring state of partitions %s from %s", sorted(partitions), topic)
        for remaining, partition, key, value in self.port.read_partitions(topic, partitions):
            # each record on its own: one that cannot be read is counted and skipped, and
            # never costs the partition's other entities their state
            if key is None:
                continue
            if store.restore_record(key, partition, value):
                restored += 1
            else:
                refused += 1
            if (restored + refused) % 1000 == 0:
                m.restore_remaining.set(remaining)
        m.restore_remaining.set(0)
        m.restore_records.inc(restored + refused)
        m.restore_seconds.observe(time.perf_counter() - started)
        log.info(
            "restored %d entity states (%d refused) in %.2fs",
            restored,
            refused,
            time.perf_counter() - started,
        )

    def _process(
        self, records: Sequence[InputRecord]
    ) -> tuple[list[Outgoing], list[tuple[Outgoing, int, str, str]], dict[tuple[str, int], int]]:
        cfg = self.config
        process = self.processor.process
        outgoing: list[Outgoing] = []
        alert_times: list[tuple[Outgoing, int, str, str]] = []  # per alert message
        offsets: dict[tuple[str, int], int] = {}
        invalid = self.metrics.events_invalid
        admit = self.control.admit if self.control is not None else None
        max_bytes = cfg.max_event_bytes
        mapped = cfg.decoder
        horizon = self._horizon()  # the wall clock, read once per batch
        # the horizon in the zone of the last event: with the same tzinfo object the
        # comparison is cheap (pydantic shares one per offset); across zones it calls
        # utcoffset() on both sides, many times the cost
        zone: tzinfo | None = UTC
        local = horizon
        for record in records:
            offsets[(record.topic, record.partition)] = record.offset + 1
            value = record.value
            if max_bytes is not None and value is not None and len(value) > max_bytes:
                invalid.labels(reason="too_large").inc()
                outgoing.append(self._too_large(record, len(value)))
                continue
            try:
                event = (
                    decode(value)
                    if mapped is None
                    else mapped(value, record.key, record.timestamp, record.headers)
                )
            except InvalidEvent as error:
                refused = (
                    InvalidEvent("unreadable", record.detail)  # the client could not parse it
                    if isinstance(record, UnreadableRecord)
                    else error
                )
                invalid.labels(reason=refused.reason).inc()
                outgoing.append(dead_letter(record, refused, cfg.dead_letter_topic))
                continue
            if local is not None:
                moment = event.time
                if moment.tzinfo is not zone:
                    zone = moment.tzinfo
                    with contextlib.suppress(OverflowError):  # else: the slower comparison
                        local = local.astimezone(zone)
                if moment > local:
                    invalid.labels(reason="future_time").inc()
                    outgoing.append(
                        dead_letter(record, self._future(moment), cfg.dead_letter_topic)
                    )
                    continue
            try:
                outcome = process(
                    event, SourcePosition(record.topic, record.partition, record.offset)
                )
            except Exception as exc:  # a bug must not stop the loop or lose the record
                log.exception(
                    "processing failed at %s/%d/%d", record.topic, record.partition, record.offset
                )
                invalid.labels(reason="processing_error").inc()
                outgoing.append(
                    dead_letter(
                        record, InvalidEvent("processing_error", repr(exc)), cfg.dead_letter_topic
                    )
                )
                continue
            for alert in outcome.alerts:
                if admit is not None and not admit(alert):
                    continue  # silenced
                message = Outgoing(
                    cfg.alerts_topic,
                    alert.entity.encode(),
                    alert.to_json(),
                    [("content-type", b"application/cloudevents+json")],
                    source=(record.topic, record.partition, record.offset),
                )
                outgoing.append(message)
                alert_times.append((message, record.timestamp, alert.type, alert.severity))
        return outgoing, alert_times, offsets

    def _horizon(self) -> datetime | None:
        """The latest event time accepted in this batch (None: no bound)."""
        ahead = self.config.max_time_ahead_s
        if ahead is None:
            return None
        try:
            return datetime.fromtimestamp(self.clock() + ahead, UTC)
        except (OverflowError, OSError, ValueError):  # a clock past year 9999: no bound
            return None

    def _future(self, moment: datetime) -> InvalidEvent:
        ahead = moment.timestamp() - self.clock()
        return InvalidEvent(
            "future_time",
            f"event time {moment.isoformat()} is {ahead:.0f}s ahead of the wall clock, "
            f"more than service.max_time_ahead_s ({self.config.max_time_ahead_s:g}s); "
            "is the producer's clock or time unit wrong?",
        )

    def _too_large(self, record: InputRecord, size: int) -> Outgoing:
        """The stub dead letter of a record too large to decode (or to keep whole)."""
        error = InvalidEvent(
            "too_large",
            f"the value has {size} bytes, more than service.max_event_bytes "
            f"({self.config.max_event_bytes}); not decoded",
        )
        letter = dead_letter(record, error, self.config.dead_letter_topic)
        return stub(letter, "too_large", error.detail)

    def _publish(self, messages: list[Outgoing]) -> list[Outgoing] | None:
        """Publish until acknowledged: the messages skipped instead (refused for good), or
        None if told to stop first.

        Temporary failures are sent again until acknowledged (or stopped). A message
        refused for good is tried ``max_refused_attempts`` times in all, then skipped; a
        dead letter refused whole is replaced by its stub first."""
        cfg = self.config
        pending = messages
        refusals: dict[int, tuple[Outgoing, int]] = {}  # id → (message: kept alive, times)
        skipped: list[Outgoing] = []
        outages = 0  # failed attempts with temporary failures
        while True:
            try:
                self.port.publish(pending, cfg.delivery_timeout_s)
                if outages:
                    log.warning("broker acknowledged again after %d failed attempts", outages)
                return skipped
            except DeliveryError as exc:
                self.metrics.broker_errors.labels(operation="publish").inc()
                again, wait = self._refused(exc.refused, refusals, skipped)
                # temporary failures are sent again (all, if the port named none)
                temporary = exc.pending if exc.pending or exc.refused else pending
                pending = temporary + again
                if temporary:
                    wait = True
                    outages += 1
                    log.warning(
                        "publishing %d messages failed (%s); broker unreachable? retrying in %.1fs",
                        len(temporary),
                        exc,
                        cfg.retry_backoff_s,
                    )
                if not pending:
                    return skipped  # everything left was skipped
                if not wait:
                    continue  # only fresh stubs to send: no reason to wait
            if self.stop.wait(cfg.retry_backoff_s):
                log.warning(
                    "stopping with %d unacknowledged messages; their offsets stay "
                    "uncommitted and will be processed again",
                    len(pending),
                )
                return None

    def _refused(
        self,
        refused: list[Refusal],
        refusals: dict[int, tuple[Outgoing, int]],
        skipped: list[Outgoing],
    ) -> tuple[list[Outgoing], bool]:
        """The refused messages to send again, and whether to wait before: a dead letter
        refused whole becomes its stub (sent at once); any other message is skipped (added
        to ``skipped``) once it was refused ``max_refused_attempts`` times."""
        cfg = self.config
        again: list[Outgoing] = []
        wait = False
        for refusal in refused:
            message = refusal.message
            if message.topic == cfg.dead_letter_topic and not is_stub(message):
                log.warning(
                    "dead letter refused whole, %s (%s: %s); sending a stub of it instead "
                    "(key, headers, size %d and SHA-256 of the value)",
                    _described(message),
                    refusal.reason,
                    refusal.detail,
                    -1 if message.value is None else len(message.value),
                )
                again.append(stub(message, refusal.reason, refusal.detail))
                continue
            times = refusals.get(id(message), (message, 0))[1] + 1
            refusals[id(message)] = (message, times)
            if times < cfg.max_refused_attempts:
                wait = True
                again.append(message)
                continue
            skipped.append(message)
            self.metrics.publish_skipped.labels(reason=refusal.reason).inc()
            log.warning(
                "skipping %s: refused %d times (%s: %s); it is lost, counted in "
                "alerting_publish_skipped_total{reason=%r}",
                _described(message),
                times,
                refusal.reason,
                refusal.detail,
                refusal.reason,
            )
        return again, wait

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        started = time.perf_counter()
        for attempt in range(3):
            try:
                self.port.commit(offsets)
                self.metrics.commit_seconds.observe(time.perf_counter() - started)
                return
            except Exception as exc:
                self.metrics.broker_errors.labels(operation="commit").inc()
                log.warning("commit failed (attempt %d: %s)", attempt + 1, exc)
                if self.stop.wait(self.config.retry_backoff_s):
                    break
        # not fatal: the events are re-read and re-alerted with the same ids
        log.warning("offsets %s not committed; those events may be processed again", offsets)

    def _flush_counts(self) -> None:
        self.metrics.count(self.processor.drain())

    def _update_lag(self) -> None:
        try:
            lag = self.port.lag()
        except Exception:  # lag is informational; never let it stop the loop
            return
        for partition, behind in lag.items():
            self.metrics.consumer_lag.labels(partition=str(partition)).set(behind)


def _described(message: Outgoing) -> str:
    """A message for a log line: where it was going and the input record behind it."""
    to = message.topic if message.partition is None else f"{message.topic}/{message.partition}"
    if message.source is not None:
        topic, partition, offset = message.source
        return f"the message to {to} of input record {topic}/{partition}/{offset}"
    key = (message.key or b"")[:100].decode(errors="replace")
    return f"the message to {to} with key {key!r}"
