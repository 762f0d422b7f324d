"""Output adapters: alert and dead-letter publishers, replay producer, synthetic market
generator."""
