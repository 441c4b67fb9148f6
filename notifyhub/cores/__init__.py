"""The stages' decisions, as plain functions: a batch (and the table state it needs) in,
what should happen out (records to produce, rows to write, holds, dead letters).

No Faust, no I/O: the agents (``notifyhub.agents``) fetch what a core needs, call it,
and apply its effects in their documented order. So a stage's logic is tested in
milliseconds, without Kafka.
"""
