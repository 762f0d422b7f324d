"""Every Prometheus metric the service exports, in one place, with an injectable registry.

Names follow DESIGN.md: namespace ``alerting_``, counters end in ``_total``, durations
in ``_seconds``, and no entity key is ever a label (cardinality). The Grafana
dashboard queries these names; renaming one means updating the dashboard and its test.

>>> from prometheus_client import CollectorRegistry
>>> m = Metrics(CollectorRegistry())
>>> m.events_processed.labels(kind="trade").inc(3)
>>> m.registry.get_sample_value("alerting_events_processed_total", {"kind": "trade"})
3.0
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import start_http_server
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from alerting import __version__

#: 1 ms to 30 s, roughly ×2.5 apart
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


#: score ÷ threshold: 1 is at the threshold, whatever the detector's scale
SCORE_RATIO_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.5, 2.0, 5.0, 10.0)


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

    def running(self, detector: str, model_version: str) -> None:
        """Say which detector this process runs (a label of ``alerting_build_info``)."""
        self.build.info(
            {"version": __version__, "detector": detector, "model_version": model_version}
        )

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` over HTTP in a daemon thread; return the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_address[1])
