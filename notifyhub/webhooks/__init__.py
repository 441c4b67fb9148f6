"""Outbound webhooks: which events exist, how a delivery is signed, how endpoint secrets
are kept, and which addresses a webhook may reach. The agents are in
``notifyhub.agents.webhooks``; the HTTP routes in ``notifyhub.web.webhooks``."""
