"""What a rebalance does, whatever the client: counted, logged, handed to the loop.

Both ports (:mod:`consumers.kafka_python`, :mod:`consumers.confluent`) run their client's
callbacks inside ``poll``/``consume`` and translate its partition objects to partition
numbers of the input topic for one :class:`Rebalance`, which counts the rebalance, sets
the assigned-partitions gauge, logs, and calls the loop's callbacks (given through
:meth:`consumers.port.Port.on_rebalance`). Revoked partitions are still owned while it
runs (the loop can checkpoint them); new ones are not fetched before it returns.

>>> from prometheus_client import CollectorRegistry
>>> from alerting.metrics import Metrics
>>> metrics = Metrics(CollectorRegistry())
>>> calls = []
>>> rebalance = Rebalance(metrics)
>>> rebalance.to(lambda p: calls.append(("assigned", p)), lambda p: calls.append(("revoked", p)))
>>> rebalance.revoked(set()), rebalance.revoked({0, 1}), rebalance.assigned({1, 3})
(None, None, None)
>>> calls, metrics.registry.get_sample_value("alerting_assigned_partitions")
([('revoked', {0, 1}), ('assigned', {1, 3})], 2.0)
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from alerting.metrics import Metrics

log = logging.getLogger(__name__)


class Rebalance:
    """The service's side of a rebalance, given the partition numbers taken or given."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.on_assigned: Callable[[set[int]], None] | None = None
        self.on_revoked: Callable[[set[int]], None] | None = None

    def to(self, assigned: Callable[[set[int]], None], revoked: Callable[[set[int]], None]) -> None:
        """Hand later rebalances to the loop: ``revoked`` before partitions are taken
        away, ``assigned`` before any record of new ones is polled."""
        self.on_assigned = assigned
        self.on_revoked = revoked

    def revoked(self, partitions: set[int]) -> None:
        """Partitions are being taken away (nothing to do for none)."""
        if not partitions:
            return
        log.info("partitions revoked: %s", sorted(partitions))
        if self.on_revoked is not None:
            self.on_revoked(partitions)

    def assigned(self, partitions: set[int]) -> None:
        """A rebalance ended with ``partitions`` owned (counted even when none are)."""
        self.metrics.rebalances.inc()
        self.metrics.assigned_partitions.set(len(partitions))
        log.info("partitions assigned: %s", sorted(partitions))
        if self.on_assigned is not None and partitions:
            self.on_assigned(partitions)
