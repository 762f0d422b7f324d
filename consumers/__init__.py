"""Input adapters: the Kafka consume loop, its port, and the alert subscriber."""
