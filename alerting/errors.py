"""The errors this service raises on purpose.

::

    AlertingError                 base of everything below
    ├── ConfigError               a setting or flag is wrong; names the setting and the fix
    │                             (a login the brokers refuse: the kafka.sasl_* settings)
    ├── BrokerError               the Kafka-protocol broker cannot be started or reached
    └── InvalidEvent              one input record failed decoding or validation;
                                  carries a short machine ``reason`` for metrics/dead letters

Messages say what failed, where, what was expected and how to fix it.
"""

from __future__ import annotations


class AlertingError(Exception):
    """Base class of the errors raised by this project."""


class ConfigError(AlertingError):
    """A setting or command-line flag is wrong. The message names it."""


class BrokerError(AlertingError):
    """The Kafka-protocol broker could not be started or reached."""


class InvalidEvent(AlertingError):
    """An input record is not a valid event.

    ``reason`` is a short, low-cardinality code (``not_json``, ``schema``, ...) used as a
    metric label and dead-letter header; ``detail`` is the human explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
