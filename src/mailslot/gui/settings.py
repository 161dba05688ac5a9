"""Small remembered client settings: the last server address and name, each server's auth
mode, and who has mail fetched as it arrives (per user and server).

Stored as JSON in ``$XDG_CONFIG_HOME/mailslot/client.json`` (default ``~/.config``).
A missing or damaged file simply means "no settings yet".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SERVER = "127.0.0.1:7777"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mailslot"


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailslot"


@dataclass
class ClientSettings:
    server: str = DEFAULT_SERVER
    user: str = ""
    auth_modes: dict[str, str] = field(default_factory=dict)
    fetch_on_arrival: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path | None = None) -> ClientSettings:
        path = path or config_dir() / "client.json"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(raw, dict):
            return cls()
        server = raw.get("server")
        user = raw.get("user")
        modes = raw.get("auth_modes")
        auto = raw.get("fetch_on_arrival")
        return cls(
            server=server if isinstance(server, str) and server else DEFAULT_SERVER,
            user=user if isinstance(user, str) else "",
            auth_modes={str(k): str(v) for k, v in modes.items()}
            if isinstance(modes, dict)
            else {},
            fetch_on_arrival={str(k) for k in auto} if isinstance(auto, list) else set(),
        )

    def save(self, path: Path | None = None) -> None:
        path = path or config_dir() / "client.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "server": self.server,
                    "user": self.user,
                    "auth_modes": self.auth_modes,
                    "fetch_on_arrival": sorted(self.fetch_on_arrival),
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        os.replace(tmp, path)
