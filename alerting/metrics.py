"""Every Prometheus metric the service exports, in one place, with an injectable registry.

Names follow the Prometheus conventions: namespace ``alerting_``, counters end in
``_total``, durations in ``_seconds``, and no entity key is ever a label (cardinality).
The Grafana dashboard queries these names; renaming one means updating the dashboard and its test.

Every series of a labelled counter whose label values are known in advance
(:data:`KNOWN_SERIES`: invalid events by reason, refused snapshots by reason, ...) exists
at 0 from the start, so a dashboard panel shows 0, not "No data", until the first one.
tests/unit/alerting/test_metrics.py checks those label values against what the code can emit.

>>> from prometheus_client import CollectorRegistry
>>> m = Metrics(CollectorRegistry())
>>> m.events_processed.labels(kind="trade").inc(3)
>>> m.registry.get_sample_value("alerting_events_processed_total", {"kind": "trade"})
3.0
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import start_http_server
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from alerting import __version__

if TYPE_CHECKING:
    from alerting.processor import Processor, ProcessorStats

#: 1 ms to 30 s, roughly ×2.5 apart
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


#: score ÷ threshold: 1 is at the threshold, whatever the detector's scale
SCORE_RATIO_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.5, 2.0, 5.0, 10.0)

# ---- label values known before the first event (see KNOWN_SERIES)

#: event kinds (alerting.events)
EVENT_KINDS = ("trade", "quote", "metric")
#: InvalidEvent reasons: alerting.events.decode, and the consume loop's own
#: (consumers.runner: too_large, future_time, processing_error)
INVALID_EVENT_REASONS = (
    "empty", "not_json", "not_an_object", "unknown_kind", "missing_field", "not_finite",
    "out_of_range", "schema", "too_large", "future_time", "unreadable", "processing_error",
)  # fmt: skip
#: alert severities (alerting.policy.Severity)
SEVERITIES = ("warning", "critical")
#: CloudEvent types (alerting.alerts FIRING, RESOLVED, DRIFT)
ALERT_TYPES = ("io.alerting.anomaly.firing", "io.alerting.anomaly.resolved", "io.alerting.drift")
#: why the policy held a breaching score back (alerting.policy.REASONS)
SUPPRESSED_REASONS = ("for", "repeat_interval", "inhibited", "feedback_mute")
#: broker operations the consume loop retries (consumers.runner)
BROKER_OPERATIONS = ("poll", "publish", "commit", "restore")
#: SnapshotRefused reasons and the changelog keys that are no entity (alerting.state)
SNAPSHOT_REFUSAL_REASONS = (
    "not_a_snapshot", "corrupt", "format_mismatch", "detector_mismatch", "config_mismatch",
    "river_mismatch", "unsigned", "bad_signature", "too_large", "bad_key",
)  # fmt: skip
#: challenger outcomes (alerting.processor)
CHALLENGER_OUTCOMES = ("started", "promoted", "discarded")
#: InvalidSilence reasons (alerting.silences)
SILENCE_RECORD_REASONS = ("no_key", "invalid", "key_mismatch")
#: InvalidFeedback reasons, and unknown_alert (alerting.feedback)
FEEDBACK_INVALID_REASONS = ("not_json", "schema", "verdict", "unknown_alert")
#: feedback verdicts (alerting.feedback.VERDICTS)
VERDICTS = ("true_positive", "false_positive")
#: feedback penalty actions (feedback.action)
PENALTY_ACTIONS = ("raise", "mute")
#: the background readers of control topics (consumers.control)
CONTROL_READERS = ("silences", "feedback")
#: why a control-topic reader failed: it could not connect or find its topic, a poll
#: failed, handling a record raised, or the reader died (then it is restarted)
READER_FAILURE_REASONS = ("connect", "poll", "record", "crashed")


def _every(**values: Sequence[str]) -> list[dict[str, str]]:
    """Every combination of the label values."""
    names = list(values)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values.values())]


#: metric attribute -> every label set it can take that is known at start; each series is
#: created at 0. A new counter with a bounded label set gets its row here.
KNOWN_SERIES: dict[str, list[dict[str, str]]] = {
    "events_processed": _every(kind=EVENT_KINDS),
    "events_invalid": _every(reason=INVALID_EVENT_REASONS),
    "alerts": [
        *_every(type=ALERT_TYPES[:2], severity=SEVERITIES),
        {"type": ALERT_TYPES[2], "severity": "warning"},  # a drift is a warning
    ],
    "alerts_suppressed": _every(reason=SUPPRESSED_REASONS),
    "broker_errors": _every(operation=BROKER_OPERATIONS),
    "snapshots_refused": _every(reason=SNAPSHOT_REFUSAL_REASONS),
    "challengers": _every(outcome=CHALLENGER_OUTCOMES),
    "alerts_silenced": _every(severity=SEVERITIES),
    "control_invalid": _every(reason=SILENCE_RECORD_REASONS),
    "feedback_invalid": _every(reason=FEEDBACK_INVALID_REASONS),
    "feedback_penalties": _every(action=PENALTY_ACTIONS),
    "control_reader_failures": _every(reader=CONTROL_READERS, reason=READER_FAILURE_REASONS),
    # records skipped after failed publishes (consumers.runner): its reasons tuple goes
    # above and its row here, e.g. "<attribute>": _every(reason=<REASONS>),
}
#: labelled metrics whose label values depend on the configuration or the data (the drift
#: detector, the forwarding targets, partitions): created when first used
OPEN_SERIES = (
    "threshold", "drift_detections", "feedback", "feedback_precision", "consumer_lag",
    "forward_sent", "forward_errors", "forward_dead_letters", "forward_up",
    "control_reader_up",
)  # fmt: skip

#: ``reason`` values of ``alerting_publish_skipped_total``: why the broker or the client
#: refuses a record for good (see :func:`consumers.port.permanent_reason`)
PUBLISH_SKIP_REASONS = ("too_large", "invalid_record", "other")
KNOWN_SERIES["publish_skipped"] = _every(reason=PUBLISH_SKIP_REASONS)  # its series at 0 too


class BulkHistogram(Collector):
    """A histogram fed a whole batch at once (numpy), not one ``observe`` per event.

    >>> r = CollectorRegistry()
    >>> h = BulkHistogram("x_ratio", "Help.", (1.0, 2.0), registry=r)
    >>> h.observe_many([0.5, 1.0, 1.5, 9.0])
    >>> r.get_sample_value("x_ratio_bucket", {"le": "1.0"}), r.get_sample_value("x_ratio_count")
    (2.0, 4.0)
    """

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = np.asarray(buckets, dtype=float)
        self.counts = np.zeros(len(buckets) + 1, dtype=np.int64)
        self.total = 0.0
        registry.register(self)

    def observe_many(self, values: Sequence[float]) -> None:
        if not values:
            return
        array = np.asarray(values, dtype=float)
        array = array[np.isfinite(array)]
        # le buckets: a value equal to a bound counts in that bound's bucket
        slots = np.searchsorted(self.bounds, array, side="left")
        self.counts += np.bincount(slots, minlength=len(self.counts))
        self.total += float(array.sum())

    def collect(self) -> Iterator[Metric]:
        cumulative = np.cumsum(self.counts)
        buckets = [(f"{b}", float(c)) for b, c in zip(self.bounds, cumulative, strict=False)]
        buckets.append(("+Inf", float(cumulative[-1])))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=buckets, sum_value=self.total
        )


class Metrics:
    """The service's metrics, registered in ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build = Info(
            "alerting_build",
            "Version of the alerting service, and the detector and model version it runs.",
            registry=r,
        )
        self.build.info({"version": __version__, "detector": "", "model_version": ""})
        self.events_consumed = Counter(
            "alerting_events_consumed_total", "Input records read from Kafka.", registry=r
        )
        self.events_processed = Counter(
            "alerting_events_processed_total",
            "Valid events scored and learned, by event kind.",
            ["kind"],
            registry=r,
        )
        self.events_invalid = Counter(
            "alerting_events_invalid_total",
            "Input records sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.alerts = Counter(
            "alerting_alerts_total",
            "Alerts published and acknowledged, by CloudEvent type and severity.",
            ["type", "severity"],
            registry=r,
        )
        self.alerts_suppressed = Counter(
            "alerting_alerts_suppressed_total",
            "Scores over the threshold that the policy did not send, by reason.",
            ["reason"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "alerting_batch_processing_seconds",
            "Time to decode, score and decide one polled batch (excludes publishing).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "alerting_batch_records",
            "Records per polled batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=r,
        )
        self.end_to_end = Histogram(
            "alerting_end_to_end_latency_seconds",
            "From the input record's Kafka timestamp to the broker acknowledging its alert.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.publish_seconds = Histogram(
            "alerting_publish_seconds",
            "Time to publish one batch's alerts and dead letters until acknowledged.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "alerting_commit_seconds",
            "Time to commit one batch's offsets.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.broker_errors = Counter(
            "alerting_broker_errors_total",
            "Failed broker operations that were retried, by operation.",
            ["operation"],
            registry=r,
        )
        self.publish_skipped = Counter(
            "alerting_publish_skipped_total",
            "Alerts, dead letters and snapshots given up on after the broker or client "
            "refused them for good service.max_refused_attempts times (a dead letter is "
            "first sent again as a stub), by reason.",
            ["reason"],
            registry=r,
        )
        self.live_models = Gauge(
            "alerting_live_models", "Per-entity models held in memory.", registry=r
        )
        self.warming_up = Gauge(
            "alerting_entities_warming_up",
            "Entities that have not yet seen enough events to alert.",
            registry=r,
        )
        self.evictions = Counter(
            "alerting_model_evictions_total",
            "Per-entity models evicted to bound memory.",
            registry=r,
        )
        self.entities_stored = Gauge(
            "alerting_entities_stored",
            "Entities whose state this process holds, live in memory or in the on-disk store "
            "(bounded by state.retention_s).",
            registry=r,
        )
        self.entities_expired = Counter(
            "alerting_entities_expired_total",
            "Entities forgotten after state.retention_s of event time without an event "
            "(dropped from memory and disk, tombstoned in the changelog).",
            registry=r,
        )
        self.events_skipped = Counter(
            "alerting_events_skipped_total",
            "Events read again after a restart that the restored state already included.",
            registry=r,
        )
        self.snapshots = Counter(
            "alerting_snapshots_total",
            "Entity state snapshots written to the changelog.",
            registry=r,
        )
        self.snapshot_bytes = Counter(
            "alerting_snapshot_bytes_total",
            "Bytes of snapshots written to the changelog.",
            registry=r,
        )
        self.snapshot_seconds = Histogram(
            "alerting_snapshot_seconds",
            "Time to encode and write one checkpoint's snapshots until acknowledged.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.snapshots_refused = Counter(
            "alerting_snapshots_refused_total",
            "Snapshots not used (another detector configuration or river version, corrupt), "
            "by reason; those entities start fresh.",
            ["reason"],
            registry=r,
        )
        self.restore_records = Counter(
            "alerting_restore_records_total",
            "Changelog records read to restore state on partition assignment.",
            registry=r,
        )
        self.restore_remaining = Gauge(
            "alerting_restore_remaining_records",
            "Changelog records still to read in the restore under way (0 when none is).",
            registry=r,
        )
        self.restore_seconds = Histogram(
            "alerting_restore_seconds",
            "Time to restore the state of newly assigned partitions.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_memory = Gauge(
            "alerting_model_memory_bytes",
            "Approximate memory of live models: live models × a per-model estimate made at start.",
            registry=r,
        )
        self.score_ratio = BulkHistogram(
            "alerting_score_ratio",
            "Scores of entities past warm-up divided by the entity's threshold at the time "
            "(1 = at the threshold), whatever the detector's scale.",
            SCORE_RATIO_BUCKETS,
            registry=r,
        )
        self.threshold = Gauge(
            "alerting_threshold",
            "Current thresholds over (a sample of up to 1,000) live entities past their "
            "threshold's grace: min, median and max.",
            ["stat"],
            registry=r,
        )
        self.drift_detections = Counter(
            "alerting_drift_detections_total",
            "Drifts detected, by drift detector and signal (score or feature).",
            ["detector", "signal"],
            registry=r,
        )
        self.models_reset = Counter(
            "alerting_models_reset_total",
            "Entity models reset after a drift (drift.action = reset).",
            registry=r,
        )
        self.challengers = Counter(
            "alerting_challengers_total",
            "Challenger models after a drift (drift.action = challenger), by outcome: "
            "started, promoted, discarded.",
            ["outcome"],
            registry=r,
        )
        self.alerts_silenced = Counter(
            "alerting_alerts_silenced_total",
            "Alerts not sent because an active silence matched them (or, for a resolved "
            "alert, because its firing was silenced), by severity.",
            ["severity"],
            registry=r,
        )
        self.silences_active = Gauge(
            "alerting_silences_active",
            "Silences active now, as this process reads them.",
            registry=r,
        )
        self.control_invalid = Counter(
            "alerting_control_records_invalid_total",
            "Records of the silences control topic that were skipped, by reason.",
            ["reason"],
            registry=r,
        )
        self.control_reader_up = Gauge(
            "alerting_control_reader_up",
            "1 while the reader of a control topic (silences, feedback) follows it, else 0.",
            ["reader"],
            registry=r,
        )
        self.control_reader_failures = Counter(
            "alerting_control_reader_failures_total",
            "Failures of the readers of control topics, by reader and reason: connect, poll, "
            "record (handling one raised), crashed (the reader died and is restarted).",
            ["reader", "reason"],
            registry=r,
        )
        self.feedback = Counter(
            "alerting_feedback_total",
            "Verdicts of subscribers on alerts this process published, by detector, "
            "severity and verdict (true_positive, false_positive).",
            ["detector", "severity", "verdict"],
            registry=r,
        )
        self.feedback_invalid = Counter(
            "alerting_feedback_invalid_total",
            "Feedback messages not counted, by reason (not_json, schema, verdict, "
            "unknown_alert: not published by this process, or forgotten).",
            ["reason"],
            registry=r,
        )
        self.feedback_precision = Gauge(
            "alerting_feedback_precision",
            "True positives ÷ verdicts since start, on alerts of this process, by detector "
            "and severity.",
            ["detector", "severity"],
            registry=r,
        )
        self.feedback_penalties = Counter(
            "alerting_feedback_penalties_total",
            "Penalties applied to entities with too many false positives, by action (raise, mute).",
            ["action"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "alerting_consumer_lag_records",
            "Records between the consumer position and the high watermark, by partition.",
            ["partition"],
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "alerting_assigned_partitions", "Input partitions assigned to this process.", registry=r
        )
        self.rebalances = Counter(
            "alerting_rebalances_total", "Consumer-group rebalances seen.", registry=r
        )
        self.broker_up = Gauge(
            "alerting_broker_up",
            "1 while the Kafka broker answers the service's health probe, else 0.",
            registry=r,
        )
        self.broker_up.set(1)
        self.last_event_timestamp = Gauge(
            "alerting_last_event_timestamp_seconds",
            "Event time of the newest processed event.",
            registry=r,
        )
        # `alerting forward`: target is the kind of receiver (alertmanager, webhook), never a URL
        self.forward_sent = Counter(
            "alerting_forward_sent_total",
            "Alerts accepted by a forwarding target, by target and CloudEvent type.",
            ["target", "type"],
            registry=r,
        )
        self.forward_errors = Counter(
            "alerting_forward_errors_total",
            "Failed deliveries to a forwarding target (each attempt), by target and reason: "
            "connection, timeout, server_error, throttled, rejected; target kafka: poll, commit.",
            ["target", "reason"],
            registry=r,
        )
        self.forward_dead_letters = Counter(
            "alerting_forward_dead_letters_total",
            "Alerts written to the forwarder's dead-letter log, by target and reason.",
            ["target", "reason"],
            registry=r,
        )
        self.forward_up = Gauge(
            "alerting_forward_up",
            "1 while the forwarding target accepts alerts, 0 from a failed delivery to the "
            "next accepted one.",
            ["target"],
            registry=r,
        )
        for attribute, series in KNOWN_SERIES.items():
            metric = getattr(self, attribute)
            for labels in series:
                metric.labels(**labels)  # the series exists, at 0

    def running(self, detector: str, model_version: str) -> None:
        """Say which detector this process runs (a label of ``alerting_build_info``); its
        feedback series exist at 0 from now on."""
        self.build.info(
            {"version": __version__, "detector": detector, "model_version": model_version}
        )
        for labels in _every(detector=(detector,), severity=SEVERITIES, verdict=VERDICTS):
            self.feedback.labels(**labels)

    def follow(self, processor: Processor, model_bytes: int) -> None:
        """Read the gauges ``processor`` decides at scrape time: live models, their memory
        (``model_bytes`` per live model, a start-time estimate), entities in warm-up and
        the newest event time. Each is one read of a number, safe from the scrape thread
        while the loop runs."""
        store = processor.store
        self.live_models.set_function(lambda: store.live)
        self.model_memory.set_function(lambda: store.live * model_bytes)
        self.warming_up.set_function(lambda: processor.warming_up)
        self.last_event_timestamp.set_function(lambda: processor.newest_timestamp)

    def count(self, stats: ProcessorStats) -> None:
        """Add what the processor counted (:meth:`Processor.drain`) to the counters."""
        self.score_ratio.observe_many(stats.score_ratios)
        if stats.skipped:
            self.events_skipped.inc(stats.skipped)
        for (detector, signal), n in stats.drifts.items():
            self.drift_detections.labels(detector=detector, signal=signal).inc(n)
        if stats.resets:
            self.models_reset.inc(stats.resets)
        for outcome, n in stats.challengers.items():
            self.challengers.labels(outcome=outcome).inc(n)
        for reason, n in stats.refused.items():
            self.snapshots_refused.labels(reason=reason).inc(n)
        for kind, n in stats.processed.items():
            self.events_processed.labels(kind=kind).inc(n)
        for reason, n in stats.suppressed.items():
            self.alerts_suppressed.labels(reason=reason).inc(n)
        if stats.evictions:
            self.evictions.inc(stats.evictions)

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` over HTTP in a daemon thread; return the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_address[1])
