"""Silences and feedback on Kafka: the background readers, the consume loop's hook, the
commands' writes.

Two control topics, read by every service instance in full (manual assignment of all
partitions, no consumer group, so no instance misses a record):

- the **silences** topic (compacted, key = silence id) is read from the beginning: at
  start the service waits (up to ``READY_TIMEOUT_S``) until it has read every silence
  to the high watermark, then keeps following it;
- the **feedback** topic is read from its high watermark at start: an instance can only
  use verdicts on alerts it published itself, which are all newer than that.

One concern per module; import a name from the module that owns it:

- :mod:`~consumers.control.reader`: ``TopicReader``, the thread that follows a control
  topic and survives its failures (``FailureLog`` counts and rate-limits them);
- :mod:`~consumers.control.hook`: ``AlertControl``, what the consume loop calls, and
  ``build_control`` from the settings;
- :mod:`~consumers.control.commands`: what ``alerting silence`` and ``alerting feedback``
  write to and read from the control topics.
"""
