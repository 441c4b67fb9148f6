"""The pipeline's stream processors, one module per stage:

intake → enrich → send (one agent per channel) → delivery events; dead letters and
preference updates (which feed enrich's preferences table) beside.
Importing this package registers every agent on the Faust app.
"""

from notifyhub.agents import dead_letters, delivery_events, enrich, intake, preferences, send

__all__ = ["dead_letters", "delivery_events", "enrich", "intake", "preferences", "send"]
