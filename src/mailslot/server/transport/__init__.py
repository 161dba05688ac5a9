"""Transports that drive a session core (server/session.py): TCP and TLS here, WebSocket
in server/ws.py. A transport admits the connection, cuts what it reads into frames,
and gives the core an `Output`; it holds no state of the protocol."""

from __future__ import annotations

from mailslot.server.throttle import source_of


def peer_and_source(address: object) -> tuple[str, str]:
    """A peer as logs show it (host:port), and the source address throttles count by."""
    if isinstance(address, tuple):
        host = str(address[0])
        peer = f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    else:
        host = peer = str(address)
    return peer, source_of(host)
