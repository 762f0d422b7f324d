"""Following a control topic in a background thread that never stops the service.

A reader's failures (no connection, a failed poll, a record whose handling raised, the
reader dying) are counted in ``alerting_control_reader_failures_total{reader, reason}``
and logged, each distinct one at most once per ``LOG_EVERY_S`` with the count of
repeats; ``alerting_control_reader_up`` says whether it follows its topic. A reader that
dies is restarted after a backoff that doubles up to ``MAX_BACKOFF_S`` (and resets once
it reads again), inside its thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from alerting.metrics import Metrics
from alerting.retry import Backoff
from alerting.settings import Settings

log = logging.getLogger("consumers.control")  # one logger for the package's log lines

#: the same failure of a reader is logged at most this often (the rest are counted)
LOG_EVERY_S = 60.0
#: restart backoff of a reader that died: from FIRST_BACKOFF_S, doubling up to this
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0


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
