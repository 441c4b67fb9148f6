"""The in-app inbox's shared parts: WebSocket tokens and real-time fan-out through Redis."""
