"""The data NotifyHub passes around: Kafka messages, statuses, channels, input limits."""
