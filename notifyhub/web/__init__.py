"""The HTTP API as Faust web views; ``notifyhub.web.views`` registers them all."""
