"""What feeds and shapes the streams outside the consume loop: the replay producer, the
synthetic market, recorded files, the real-data corpus, dead-letter records and topic
creation (see docs/ARCHITECTURE.md)."""
