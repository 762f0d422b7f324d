"""Everything that talks to Kafka and HTTP: one module per Kafka client, the consume loop
and its port, the control topics, the alert subscriber and the forwarder (see
docs/ARCHITECTURE.md)."""
