"""Delivery machinery around the providers: failover through a channel's providers,
circuit breakers, shared provider rate limits and push fan-out.

The send agent (``notifyhub.agents.send``) hands each claimed notification to a
``Dispatcher`` and turns the ``Outcome`` (``notifyhub.model.outcomes``) into status
events, retries and dead letters.
"""
