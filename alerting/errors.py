"""The errors this service raises on purpose, all of them, drawn as one tree.

::

    AlertingError                 base of everything below
    ├── ConfigError               a setting or flag is wrong; names the setting and the fix
    │                             (a login the brokers refuse: the kafka.sasl_* settings)
    ├── BrokerError               the Kafka-protocol broker cannot be started or reached
    ├── LabelError(ValueError)    a labels file or label column of a back-test is unreadable
    ├── PlainError(ValueError)    snapshot data of the wrong type or shape (alerting.plain)
    ├── CorpusError(RuntimeError) a corpus file cannot be fetched, checked or read
    ├── DeliveryError             the port left messages unacknowledged: ``pending`` to send
    │                             again, ``refused`` for good (defined in consumers.port,
    │                             next to the message types it carries)
    └── ReasonedError             one thing refused, with a short machine ``reason`` (a
        │                         metric label) and a human ``detail``
        ├── InvalidEvent          an input record failed decoding or validation
        ├── SnapshotRefused       a changelog snapshot that cannot be used
        ├── InvalidSilence(ValueError)    a control record that is not a usable silence
        ├── InvalidFeedback(ValueError)   a feedback message that cannot be used
        └── DeliveryFailed        one POST of ``alerting forward`` failed; ``retryable``

The built-in base in parentheses is kept so that ``except ValueError`` still catches
those. The errors a person can act on become a one-line message at one boundary
(``alerting.cli.main``): a :class:`ConfigError` with exit status 2, a
:class:`BrokerError`, an :class:`InvalidEvent` or a bare :class:`AlertingError` with 1.
The others are handled where they are raised (a refused snapshot is counted, a failed
delivery retried); one that escapes is a bug, and keeps its traceback.

Signals that are not errors stay private to the code that raises and catches them:
``alerting.plain.NotPlain`` (a state that has no plain form: its snapshot is pickled and
signed instead), ``consumers.control.reader._ReaderFailed`` (a control-topic reader failure
already counted, the reader restarts) and ``producers.files._RowError`` (a bad row of a
recorded file, yielded as an ``InvalidRow``).

Messages say what failed, where, what was expected and how to fix it.
"""

from __future__ import annotations


class AlertingError(Exception):
    """Base class of the errors raised by this project."""


class ConfigError(AlertingError):
    """A setting or command-line flag is wrong. The message names it."""


class BrokerError(AlertingError):
    """The Kafka-protocol broker could not be started or reached."""


class LabelError(AlertingError, ValueError):
    """A labels file or label column that cannot be read; the message says where."""


class PlainError(AlertingError, ValueError):
    """Plain data of the wrong type or shape; the message says where."""


class CorpusError(AlertingError, RuntimeError):
    """A corpus file that cannot be fetched, fails its checksum, or cannot be read."""


class ReasonedError(AlertingError):
    """Something refused for a ``reason``: a short, low-cardinality code used as a metric
    label (and a dead-letter header), with ``detail``, the human explanation.

    >>> error = ReasonedError("not_json", "empty message")
    >>> str(error), error.reason, error.detail
    ('not_json: empty message', 'not_json', 'empty message')
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InvalidEvent(ReasonedError):
    """An input record is not a valid event.

    ``reason`` is a short, low-cardinality code (``not_json``, ``schema``, ...) used as a
    metric label and dead-letter header; ``detail`` is the human explanation.
    """


class SnapshotRefused(ReasonedError):
    """A snapshot that cannot be used; ``reason`` is a short metric label."""


class InvalidSilence(ReasonedError, ValueError):
    """A control record that is not a usable silence; ``reason`` is a short metric label."""


class InvalidFeedback(ReasonedError, ValueError):
    """A feedback message that cannot be used; ``reason`` is a short metric label."""


class DeliveryFailed(ReasonedError):
    """One POST failed; ``retryable`` says whether trying again can help."""

    def __init__(self, reason: str, detail: str, retryable: bool) -> None:
        super().__init__(reason, detail)
        self.retryable = retryable
