"""The data NotifyHub passes around: Kafka messages, statuses, channels, recipient keys,
delivery outcomes, input limits."""
