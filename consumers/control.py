"""Silences and feedback on Kafka: the background readers, the consume loop's hook, the CLI.

Two control topics, read by every service instance in full (manual assignment of all
partitions, no consumer group, so no instance misses a record):

- the **silences** topic (compacted, key = silence id) is read from the beginning: at
  start the service waits (up to ``READY_TIMEOUT_S``) until it has read every silence
  to the high watermark, then keeps following it;
- the **feedback** topic is read from its high watermark at start: an instance can only
  use verdicts on alerts it published itself, which are all newer than that.

:class:`AlertControl` is what the consume loop calls: ``admit`` per alert before
publishing (silences; the admitted ones are indexed for feedback), and ``end_batch``
once per batch on the loop's own thread (metrics, and the queued feedback penalties
applied through ``Processor.apply_penalty``).

A reader never stops the service. Its failures (no connection, a failed poll, a record
whose handling raised, the reader dying) are counted in
``alerting_control_reader_failures_total{reader, reason}`` and logged, each distinct one
at most once per ``LOG_EVERY_S`` with the count of repeats; ``alerting_control_reader_up``
says whether it follows its topic. A reader that dies is restarted after a backoff that
doubles up to ``MAX_BACKOFF_S`` (and resets once it reads again), inside its thread, and
:meth:`AlertControl.end_batch` starts a new thread if the thread itself is gone.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from alerting.alerts import Alert
from alerting.errors import BrokerError, ConfigError, InvalidSilence
from alerting.feedback import (
    VERDICT_ALIASES,
    AlertIndex,
    AlertInfo,
    Feedback,
    FeedbackHandler,
    FeedbackPolicy,
)
from alerting.metrics import Metrics
from alerting.retry import Backoff
from alerting.settings import ENV_PREFIX, Settings
from alerting.silences import (
    SEVERITIES,
    SilenceGate,
    SilenceSet,
    new_silence,
    parse_duration,
)

if TYPE_CHECKING:
    from alerting.processor import Processor

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 15.0
#: the same failure of a reader is logged at most this often (the rest are counted)
LOG_EVERY_S = 60.0
#: restart backoff of a reader that died: from FIRST_BACKOFF_S, doubling up to this
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0


# ---------------------------------------------------------------- reading a control topic


class _ReaderFailed(Exception):
    """A failure already counted under ``reason`` (the reader restarts after it)."""

    def __init__(self, reason: str, cause: Exception) -> None:
        super().__init__(f"{reason}: {cause}")
        self.reason = reason
        self.cause = cause


class FailureLog:
    """Counts a reader's failures by reason and logs each distinct one (reason and
    exception type) at most once per ``every_s``, with how many were not logged since."""

    def __init__(
        self,
        what: str,
        count: Callable[[str], None] | None = None,
        every_s: float = LOG_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.count = count
        self.every_s = every_s
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._unlogged: dict[tuple[str, str], int] = {}

    def failed(
        self, reason: str, exc: BaseException, detail: str = "", trace: bool = False
    ) -> None:
        if self.count is not None:
            self.count(reason)
        key = (reason, type(exc).__name__)
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._unlogged[key] = self._unlogged.get(key, 0) + 1
            return
        self._last[key] = now
        more = self._unlogged.pop(key, 0)
        log.warning(
            "%s: %s%s (%r)%s; alerting_control_reader_failures_total{reason=%r}",
            self.what,
            reason,
            f" {detail}" if detail else "",
            exc,
            f", and {more} more like it in the last {self.every_s:g}s" if more else "",
            reason,
            exc_info=exc if trace else None,
        )


class TopicReader(threading.Thread):
    """Follows every partition of ``topic`` in a daemon thread, calling ``handle`` per record.

    ``start_at`` is ``beginning`` or ``end`` (the high watermark when the reader starts;
    fetch responses carry it, as tansu's ListOffsets does not). :attr:`ready` is set once
    the reader's position has reached the high watermark on every partition, or when it
    first fails (nobody waits for a reader that cannot read). ``handle`` must not raise;
    if it does, the record is counted, logged and skipped. With ``restart``, a reader that
    dies follows the topic again after a backoff (from where a fresh reader starts);
    without, it stops and keeps the exception in :attr:`error`. ``metrics`` and ``name``
    (a :data:`~alerting.metrics.CONTROL_READERS` label) count its failures and say
    whether it is up; ``consumer`` makes its Kafka consumer (a fake in tests).
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        handle: Callable[[Any], None],
        start_at: str = "beginning",
        wait_topic_s: float | None = None,
        *,
        name: str | None = None,
        metrics: Metrics | None = None,
        restart: bool = True,
        consumer: Callable[[], Any] | None = None,
        first_backoff_s: float = FIRST_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        poll_retry_s: float = 1.0,
    ) -> None:
        if start_at not in ("beginning", "end"):
            raise ValueError(f"start_at must be 'beginning' or 'end', got {start_at!r}")
        if not 0 < first_backoff_s <= max_backoff_s:
            raise ValueError(
                f"first_backoff_s must be positive and at most max_backoff_s, got "
                f"{first_backoff_s} and {max_backoff_s}"
            )
        super().__init__(name=f"reader-{topic}", daemon=True)
        self.settings = settings
        self.topic = topic
        self.handle = handle
        self.start_at = start_at
        self.wait_topic_s = wait_topic_s
        self.reader = name or topic
        self.metrics = metrics
        self.restart = restart
        self.consumer = consumer
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.backoff = Backoff(first_backoff_s, max_backoff_s)
        self.poll_retry_s = poll_retry_s
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.records = 0
        self.restarts = 0
        self.error: Exception | None = None
        self.failures = FailureLog(f"reader of {topic}", self._count)
        self._set_up(0)

    def _count(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.control_reader_failures.labels(reader=self.reader, reason=reason).inc()

    def _set_up(self, value: int) -> None:
        if self.metrics is not None:
            self.metrics.control_reader_up.labels(reader=self.reader).set(value)

    def again(self) -> TopicReader:
        """A new, unstarted reader like this one (to replace a thread that is gone)."""
        twin = TopicReader(
            self.settings,
            self.topic,
            self.handle,
            self.start_at,
            self.wait_topic_s,
            name=self.reader,
            metrics=self.metrics,
            restart=self.restart,
            consumer=self.consumer,
            first_backoff_s=self.first_backoff_s,
            max_backoff_s=self.max_backoff_s,
            poll_retry_s=self.poll_retry_s,
        )
        twin.failures = self.failures  # the same rate limit across the replacement
        twin.restarts = self.restarts + 1
        return twin

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout_s)
        self._set_up(0)

    def run(self) -> None:
        failures = 0  # in a row, without a record read in between
        try:
            while not self.stopping.is_set():
                read = self.records
                try:
                    self._follow()
                    return  # stopped, or (wait_topic_s) no topic to read
                except _ReaderFailed as failed:  # counted and logged where it failed
                    self.error = failed.cause
                    failures += 1
                except Exception as exc:  # never take the service down
                    self.error = exc
                    # it had read again: start over
                    failures = 1 if self.records > read else failures + 1
                    self.failures.failed(
                        "crashed",
                        exc,
                        f"after {self.records - read} records; "
                        + (
                            f"restarting in {self.backoff.delay(failures):g}s"
                            if self.restart
                            else "not restarted"
                        ),
                        trace=True,
                    )
                self._set_up(0)
                self.ready.set()  # nobody waits for a reader that cannot read
                if not self.restart or self.stopping.wait(self.backoff.delay(failures)):
                    return
                self.restarts += 1
        finally:
            self._set_up(0)
            self.ready.set()

    def _new_consumer(self) -> Any:
        if self.consumer is not None:
            return self.consumer()
        from consumers.kafka_python import consumer_for

        return consumer_for(self.settings, group_id=None, auto_offset_reset="earliest")

    def _follow(self) -> None:
        from consumers.kafka_python import follow, wait_for_partitions

        try:
            consumer = self._new_consumer()
        except Exception as exc:
            self.failures.failed("connect", exc, "(no consumer; is the broker up?)")
            raise _ReaderFailed("connect", exc) from exc
        try:
            started = time.monotonic()
            limit = self.wait_topic_s
            try:
                partitions = wait_for_partitions(
                    consumer,
                    self.topic,
                    lambda: limit is not None and time.monotonic() - started > limit,
                    self.stopping.wait,
                )
            except Exception as exc:
                self.failures.failed("connect", exc, "(reading the topic's partitions)")
                raise _ReaderFailed("connect", exc) from exc
            if partitions is None:
                return  # stopped, or no topic: nothing to read
            failures = 0

            def poll_failed(exc: Exception) -> None:
                nonlocal failures
                failures += 1
                self._set_up(0)
                self.failures.failed("poll", exc, f"(retrying every {self.poll_retry_s:g}s)")
                self.stopping.wait(self.poll_retry_s)

            def caught_up() -> None:
                log.debug("read %d records of %s", self.records, self.topic)
                self.ready.set()

            for batch in follow(
                consumer,
                self.topic,
                self.start_at,
                self.stopping.is_set,
                partitions=partitions,
                max_records=1000,
                started=lambda: self._set_up(1),
                caught_up=None if self.ready.is_set() else caught_up,
                poll_failed=poll_failed,
            ):
                if failures:
                    log.warning("reading %s again after %d failed polls", self.topic, failures)
                    failures = 0
                    self._set_up(1)
                for records in batch.values():
                    for record in records:
                        self.records += 1
                        try:
                            self.handle(record)
                        except Exception as exc:
                            self.failures.failed(
                                "record", exc, f"{_where(record)} skipped", trace=True
                            )
        finally:
            consumer.close()


def _where(record: Any) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"


# ---------------------------------------------------------------- the consume loop's hook


class AlertControl:
    """Silences and feedback, as the consume loop sees them.

    ``admit`` runs on the loop's thread for every alert before it is published;
    ``end_batch`` once per batch on the same thread. The readers only touch the
    silence set (swapped atomically), the alert index (locked) and the penalty queue.
    """

    def __init__(
        self,
        metrics: Metrics,
        silences: SilenceSet | None = None,
        feedback: FeedbackHandler | None = None,
        clock: Callable[[], float] = time.time,
        max_remembered: int = 100_000,
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self.silences = silences if silences is not None else SilenceSet()
        self.gate = SilenceGate(self.silences, clock, max_remembered)
        self.feedback = feedback
        self.readers: list[TopicReader] = []
        #: readers whose thread is gone: name → (when a new one may start, its attempt)
        self._replace_at: dict[str, tuple[float, int]] = {}

    # -- silences control records (reader thread) --------------------------------------

    def on_silence_record(self, record: Any) -> None:
        try:
            self.silences.apply(record.key, record.value)
        except InvalidSilence as exc:
            self.metrics.control_invalid.labels(reason=exc.reason).inc()
            log.warning(
                "silence record %s skipped: %s (alerting_control_records_invalid_total)",
                _where(record),
                exc.detail,
            )
            return
        silence = self.silences.get(record.key.decode("utf-8", errors="replace"))
        if silence is not None:
            state = silence.state(self.clock())
            log.log(
                logging.DEBUG if state == "expired" else logging.INFO,
                "silence %s (%s) for entity =~ %s%s until %s",
                silence.id,
                state,
                silence.entity,
                f", severity {silence.severity}" if silence.severity else "",
                silence.to_dict()["ends_at"],
            )

    def on_feedback_record(self, record: Any) -> None:
        if self.feedback is not None:
            self.feedback.handle(record.value, _where(record))

    # -- the consume loop (its thread) --------------------------------------------------

    def admit(self, alert: Alert) -> bool:
        """True if ``alert`` is to be published (and remember it for feedback)."""
        if not self.gate.admit(alert):
            return False
        if self.feedback is not None:
            self.feedback.index.add(
                alert.id,
                AlertInfo(alert.entity, alert.detector, alert.severity, alert.type.rsplit(".")[-1]),
            )
        return True

    def end_batch(self, processor: Processor) -> None:
        """Flush counts; apply the feedback penalties queued since the last batch; start
        a new thread for a reader whose thread is gone."""
        self._supervise()
        m = self.metrics
        for severity, n in self.gate.silenced.items():
            m.alerts_silenced.labels(severity=severity).inc(n)
        self.gate.silenced.clear()
        m.silences_active.set(self.silences.active_count(self.clock()))
        if self.feedback is None:
            return
        for penalty in self.feedback.take_penalties():
            applied = processor.apply_penalty(
                penalty.entity, penalty.threshold_factor, penalty.mute_s, penalty.duration_s
            )
            if not applied:
                log.warning(
                    "feedback penalty for %s not applied: this process holds no state of it "
                    "(another instance owns its partition now)",
                    penalty.entity,
                )
                continue
            m.feedback_penalties.labels(action=penalty.action).inc()
            what = (
                f"threshold × {penalty.threshold_factor:g}"
                if penalty.action == "raise"
                else "firing alerts muted"
            )
            log.warning(
                "feedback penalty on %s: %s for %gs of event time (%d false positives "
                "within %gs; feedback.*)",
                penalty.entity,
                what,
                penalty.duration_s,
                self.feedback.policy.false_positives,
                self.feedback.policy.window_s,
            )

    def _supervise(self, clock: Callable[[], float] = time.monotonic) -> None:
        """A reader restarts itself after a failure; this covers its thread ending anyway
        (a bug, an exception that is no ``Exception``). Per batch: a liveness check each."""
        for i, reader in enumerate(self.readers):
            if reader.is_alive() or reader.ident is None or reader.stopping.is_set():
                continue  # running, never started, or stopped on purpose
            now = clock()
            due = self._replace_at.get(reader.reader)
            if due is None:  # just found gone
                self._replace_at[reader.reader] = (now + reader.backoff.delay(1), 1)
                reader.failures.failed(
                    "crashed",
                    RuntimeError("the reader thread ended"),
                    f"starting a new one in {reader.backoff.delay(1):g}s",
                )
                continue
            at, replaced = due
            if now < at:
                continue
            fresh = reader.again()
            self.readers[i] = fresh
            replaced += 1
            self._replace_at[reader.reader] = (now + reader.backoff.delay(replaced), replaced)
            fresh.start()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, settings: Settings, ready_timeout_s: float = READY_TIMEOUT_S) -> AlertControl:
        """Start the readers; wait until every silence has been read once."""
        silences = TopicReader(
            settings,
            settings.topics.silences,
            self.on_silence_record,
            name="silences",
            metrics=self.metrics,
        )
        self.readers.append(silences)
        silences.start()
        if self.feedback is not None:
            reader = TopicReader(
                settings,
                settings.topics.feedback,
                self.on_feedback_record,
                start_at="end",
                name="feedback",
                metrics=self.metrics,
            )
            self.readers.append(reader)
            reader.start()
        if silences.ready.wait(ready_timeout_s):
            log.info(
                "silences: %d active, read from %s",
                self.silences.active_count(self.clock()),
                settings.topics.silences,
            )
        else:
            log.warning(
                "silences not read within %gs from %s; starting anyway, they apply once read",
                ready_timeout_s,
                settings.topics.silences,
            )
        return self

    def stop(self) -> None:
        for reader in self.readers:
            reader.stop()


def build_control(
    settings: Settings, metrics: Metrics, clock: Callable[[], float] = time.time
) -> AlertControl:
    """The :class:`AlertControl` the settings describe (not started)."""
    f = settings.feedback
    feedback = None
    if f.enabled:
        policy = FeedbackPolicy(
            f.false_positives, f.window_s, f.action, f.threshold_factor, f.penalty_s
        )
        feedback = FeedbackHandler(AlertIndex(f.index_size), policy, metrics, clock)
    return AlertControl(metrics, feedback=feedback, clock=clock)


# ---------------------------------------------------------------- command line


def _need_cluster(settings: Settings, what: str) -> None:
    if not settings.kafka.bootstrap_servers:
        raise ConfigError(
            f"{what} needs the cluster the service uses: set kafka.bootstrap_servers "
            f"({ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS)"
        )


def _publish(settings: Settings, topic: str, key: bytes, value: bytes) -> None:
    from consumers.kafka_python import producer_for

    try:
        producer = producer_for(settings)
    except Exception as exc:
        raise BrokerError(
            f"no broker answers at {settings.kafka.bootstrap_servers} ({exc}); check "
            f"kafka.bootstrap_servers ({ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS)"
        ) from None
    try:
        producer.send(topic, key=key, value=value).get(timeout=settings.kafka.delivery_timeout_s)
    except Exception as exc:
        raise BrokerError(f"writing to {topic} failed: {exc}") from None
    finally:
        producer.close(timeout=5)


def read_silences(settings: Settings, timeout_s: float = 30.0) -> SilenceSet:
    """Every silence in the control topic (empty if the topic does not exist)."""
    silences = SilenceSet()

    def apply(record: Any) -> None:
        try:
            silences.apply(record.key, record.value)
        except InvalidSilence as exc:
            print(f"skipped silence record {_where(record)}: {exc.detail}", file=sys.stderr)

    reader = TopicReader(settings, settings.topics.silences, apply, wait_topic_s=5.0, restart=False)
    reader.start()
    reader.ready.wait(timeout_s)
    reader.stop()
    if reader.error is not None:
        raise BrokerError(f"reading {settings.topics.silences} failed: {reader.error}")
    return silences


def _ensure(settings: Settings, topic: str) -> None:
    if settings.topics.create:
        from producers.topics import ensure_topics

        ensure_topics(settings, [topic])


def add_silence(
    settings: Settings,
    entity: str,
    severity: str | None,
    duration: str,
    comment: str,
    author: str | None = None,
    out: TextIO = sys.stdout,
    clock: Callable[[], float] = time.time,
) -> int:
    """``alerting silence add``: publish a new silence and print its id.

    ``author`` None: the current user.
    """
    topic = settings.topics.silences
    if severity is not None and severity not in SEVERITIES:
        raise ConfigError(f"--severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    try:
        duration_s = parse_duration(duration)
    except ValueError as exc:
        raise ConfigError(f"--duration: {exc}") from None
    if not comment.strip():
        raise ConfigError("--comment must not be empty: say why the alerts are silenced")
    try:
        silence = new_silence(
            entity,
            severity,
            duration_s,
            comment,
            author or os.environ.get("USER") or getpass.getuser(),
            now=clock(),
        )
    except ValueError as exc:
        raise ConfigError(f"--entity: {exc}") from None
    _need_cluster(settings, "silence add")
    _ensure(settings, topic)
    _publish(settings, topic, silence.id.encode(), silence.to_json())
    print(silence.id, file=out)
    return 0


def list_silences(
    settings: Settings,
    show_all: bool = False,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    clock: Callable[[], float] = time.time,
) -> int:
    """``alerting silence list``: the silences in force (``show_all``: expired ones too)."""
    _need_cluster(settings, "silence list")
    silences = read_silences(settings)
    now = clock()
    shown = [s for s in silences.all() if show_all or s.state(now) != "expired"]
    if as_json:
        for s in shown:
            out.write(json.dumps({**s.to_dict(), "state": s.state(now)}) + "\n")
        return 0
    if not shown:
        print(
            "no silences" + ("" if show_all else " in force (--all shows expired ones)"),
            file=out,
        )
        return 0
    print(
        f"{'ID':36}  {'STATE':8} {'ENDS':20} {'SEVERITY':8} {'ENTITY':16} AUTHOR: COMMENT",
        file=out,
    )
    for s in shown:
        ends = datetime.fromtimestamp(s.ends_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(
            f"{s.id:36}  {s.state(now):8} {ends:20} {s.severity or '*':8} {s.entity:16} "
            f"{s.author}: {s.comment}",
            file=out,
        )
    return 0


def expire_silence(
    settings: Settings,
    silence_id: str,
    out: TextIO = sys.stdout,
    clock: Callable[[], float] = time.time,
) -> int:
    """``alerting silence expire ID``: end a silence now."""
    topic = settings.topics.silences
    _need_cluster(settings, "silence expire")
    silences = read_silences(settings)
    now = clock()
    found = silences.get(silence_id)
    if found is None:
        raise ConfigError(
            f"no silence with id {silence_id} in {topic}; `alerting silence list --all` lists them"
        )
    if found.state(now) == "expired":
        print(f"silence {found.id} had already expired", file=out)
        return 0
    _publish(settings, topic, found.id.encode(), found.expired(now).to_json())
    print(f"expired {found.id}", file=out)
    return 0


def send_feedback(
    settings: Settings, alert_id: str, verdict: str, note: str | None, out: TextIO = sys.stdout
) -> int:
    """``alerting feedback ALERT_ID --verdict tp|fp [--note TEXT]``."""
    decided = VERDICT_ALIASES.get(verdict)
    if decided is None:
        raise ConfigError(f"--verdict must be tp or fp, got {verdict!r}")
    if not alert_id.strip():
        raise ConfigError("ALERT_ID must not be empty: the `id` of the alert's CloudEvent")
    feedback = Feedback(alert_id.strip(), decided, note)
    _need_cluster(settings, "feedback")
    _ensure(settings, settings.topics.feedback)
    _publish(settings, settings.topics.feedback, feedback.alert_id.encode(), feedback.to_json())
    print(f"{decided} on {feedback.alert_id} sent to {settings.topics.feedback}", file=out)
    return 0
