"""Server addresses as people type them: host, host:port or [IPv6]:port."""

from __future__ import annotations

from mailslot.protocol import DEFAULT_PORT


def parse_address(text: str) -> tuple[str, int]:
    """Parse ``host``, ``host:port`` or ``[v6]:port``; raise ValueError with a sentence."""
    text = text.strip()
    if not text:
        raise ValueError("Enter the server address, for example 127.0.0.1:7777.")
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"“{text}” is not a server address: a “]” is missing.")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"“{text}” is not a server address; use host:port.")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise ValueError(f"“{text}” has no host name; use host:port, e.g. 127.0.0.1:7777.")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"“{port_text}” is not a port number (1–65535).")
    return host, int(port_text)


def parse_addresses(text: str) -> list[tuple[str, int]]:
    """A comma-separated list of addresses (servers to try in order), each as
    `parse_address` takes it; ValueError with a sentence."""
    parts = [part for part in text.split(",") if part.strip()] or [text]
    return [parse_address(part) for part in parts]


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
