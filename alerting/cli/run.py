"""``alerting run``: the detector service, until SIGINT/SIGTERM or a refused login."""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

from alerting.settings import Settings
from alerting.wiring import (
    StopSignals,
    build_port,
    build_processor,
    kafka_cluster,
    require_signing_key,
    select_input,
    serve_metrics,
)

log = logging.getLogger("alerting")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``run`` takes one flag, the declared input to read; everything else is a setting."""
    p.add_argument(
        "--input",
        metavar="TOPIC",
        help="the [[inputs]] block to read, by topic (needed when several are declared; "
        "one process reads one input)",
    )


def command(settings: Settings, args: argparse.Namespace) -> int:
    return run_service(settings, args.input)


def run_service(settings: Settings, input_topic: str | None = None) -> int:
    """Consume, decide and publish on the configured cluster (or an embedded broker).

    With ``[[inputs]]`` the process reads one of them (:func:`select_input`): its topic,
    through its mapping, in its own group and changelog."""
    import tempfile

    from alerting.metrics import Metrics
    from alerting.state import SqliteColdStore, estimate_model_bytes
    from consumers.control.hook import build_control
    from consumers.health import BrokerWatchdog, require_broker
    from consumers.runner import LoopConfig, Service
    from producers.topics import ensure_topics

    settings, mapping = select_input(settings, input_topic)
    metrics = Metrics()
    with contextlib.ExitStack() as stack, kafka_cluster(settings) as s:
        require_signing_key(s)
        state_dir = s.state.dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cold = SqliteColdStore(state_dir / f"{s.service.group_id}.sqlite")
        stack.callback(cold.close)
        processor = build_processor(s, cold=cold)
        metrics.running(processor.template.name, processor.model_version)
        model_bytes = estimate_model_bytes(processor.new_state)
        require_broker(s.kafka)  # one line naming the setting, not the clients' traceback
        if s.topics.create:
            ensure_topics(s)
        serve_metrics(s, metrics)
        # a refused login (the probe's or the client's) stops the service with a ConfigError
        watchdog = BrokerWatchdog(s.kafka, on_change=metrics.broker_up.set)
        port = build_port(s, metrics, on_refused=watchdog.refuse)
        control = build_control(s, metrics).start(s)  # silences read before the first batch
        service = Service(
            port,
            processor,
            metrics,
            LoopConfig(
                alerts_topic=s.topics.alerts,
                dead_letter_topic=s.topics.dead_letters,
                max_batch_records=s.service.max_batch_records,
                poll_timeout_ms=s.service.poll_timeout_ms,
                delivery_timeout_s=s.kafka.delivery_timeout_s,
                retry_backoff_s=s.service.retry_backoff_s,
                changelog_topic=s.topics.changelog,
                commit_interval_s=s.service.commit_interval_s,
                max_event_bytes=s.service.max_event_bytes,
                max_time_ahead_s=s.service.max_time_ahead_s,
                max_refused_attempts=s.service.max_refused_attempts,
                decoder=mapping.decode if mapping is not None else None,
            ),
            model_bytes=model_bytes,
            control=control,
        )
        StopSignals(on_stop=service.stop.set).install()
        watchdog.on_refused = lambda _: service.stop.set()
        if watchdog.refused is not None:  # refused while the port was set up
            service.stop.set()
        watchdog.start()
        log.info(
            "consuming %s%s as group %s from %s (client %s) with detector %s; alerts to %s",
            s.topics.events,
            f" (input, kind {mapping.kind})" if mapping is not None else "",
            s.service.group_id,
            s.kafka.bootstrap_servers,
            s.kafka.client,
            processor.model_version,
            s.topics.alerts,
        )
        try:
            service.run()
        finally:
            watchdog.stop()
            control.stop()
        if watchdog.refused is not None:
            raise watchdog.refused
    return 0
