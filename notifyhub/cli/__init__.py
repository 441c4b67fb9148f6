"""The ``notifyhub`` command line."""
