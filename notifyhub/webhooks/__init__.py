"""Outbound webhooks: which events exist, how a delivery is signed and sent, how endpoint
secrets are kept, and which addresses a webhook may reach. The stages that fan events out
and deliver them are in ``notifyhub.agents.webhooks``; the HTTP routes in
``notifyhub.web.webhooks``; the queries in ``notifyhub.db.webhooks``."""
