"""NotifyHub: a multi-tenant, multi-channel notification pipeline on Faust over Kafka."""

__version__ = "0.1.0"
