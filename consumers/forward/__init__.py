"""Forward alerts to Alertmanager and webhooks: ``alerting forward``.

Reads the alerts topic in its own consumer group (``forward.group_id``) and delivers
each batch to every target; the offsets are committed only once every target accepted
the batch (or, for a webhook, an alert went to the dead-letter log), so a crash or a
stop forwards the batch again: at-least-once. Receivers deduplicate on the CloudEvent
``id`` (webhooks) or on the label set (Alertmanager does so by itself).

- Alertmanager (API v2, ``POST /api/v2/alerts``): firing and resolved alerts, drift as
  a warning alert ``Drift`` (``forward.drift = "skip"`` leaves them out). While it is
  unreachable or failing (connection, timeout, 5xx, 429) the batch is retried with
  exponential backoff for as long as it takes, and nothing is committed. An alert it
  rejects (another 4xx: it can never be accepted) goes to the dead-letter log.
- Webhook: every CloudEvent as its own ``POST`` (structured mode, content type
  ``application/cloudevents+json``), ``forward.max_attempts`` attempts, then the alert
  goes to the dead-letter log (JSON Lines, ``forward.dead_letter_path``) and the
  forwarder moves on.

Redirects are never followed (urllib would turn the POST into a body-less GET to
another origin, with the credentials and the signature): a 3xx is a failed delivery
(``redirected``), retried like a 5xx. URLs are redacted (``redact_url``) wherever they
are logged or stored, and ``user:password@`` in a URL is sent as Basic auth.

One concern per module; import a name from the module that owns it:

- :mod:`~consumers.forward.mapping`: a CloudEvent as Alertmanager alerts (pure);
- :mod:`~consumers.forward.http`: one POST, its answer as success or
  :class:`~alerting.errors.DeliveryFailed`, and the body signature;
- :mod:`~consumers.forward.targets`: the targets (``Target``, ``AlertmanagerTarget``,
  ``WebhookTarget``), what each is sent, and ``build_targets`` from the settings;
- :mod:`~consumers.forward.deadletters`: the dead-letter log;
- :mod:`~consumers.forward.loop`: the ``Forwarder`` (poll, deliver, commit), its Kafka
  source, and ``forward``, which runs it on the configured cluster.

Errors::

    DeliveryFailed     one POST failed: ``reason`` (connection, timeout, server_error,
                       throttled, redirected, rejected) and whether retrying can help
    AlertingError      the dead-letter log cannot be written (the forwarder stops
                       rather than commit an alert it could not keep)
"""
