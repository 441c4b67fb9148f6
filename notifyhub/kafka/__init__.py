"""Kafka and Faust: the app's fixes to Faust, the in-order consumer, topic names, and which
partition a key belongs to."""
