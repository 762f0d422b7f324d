"""Streaming anomaly alerting: the pure core (schemas, settings, features, detectors, processor).

Nothing in this package imports a Kafka client; the adapters live in ``consumers`` and
``producers``. See ``../shared/DESIGN.md`` for the map.
"""

__version__ = "0.1.0"
