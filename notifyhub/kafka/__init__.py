"""Kafka and Faust: the app's fixes to Faust, the in-order consumer, and topic names."""
