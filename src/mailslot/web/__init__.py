"""The web client: static files served by mailslot.server.webapp at `/`."""
