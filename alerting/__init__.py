"""Streaming anomaly alerting: the core (schemas, settings, features, detectors, processor)
and, in ``alerting.cli`` and ``alerting.wiring``, the composition root.

Nothing in the core imports a Kafka client or an adapter; the adapters live in
``consumers`` and ``producers``. See ``docs/ARCHITECTURE.md`` for the map.
"""

__version__ = "0.1.0"
