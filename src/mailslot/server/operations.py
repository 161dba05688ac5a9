"""The operator's side of a running server: the admin control socket, the HTTP
side port, and reloading the TLS certificate on SIGHUP."""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING

from mailslot.server.admin import ControlSocket
from mailslot.server.config import ServerConfig, StartupError, listen_failure

if TYPE_CHECKING:
    from mailslot.server.core import MailslotServer
    from mailslot.server.http import SidePort

log = logging.getLogger("mailslot.server")


class Operations:
    def __init__(self, server: MailslotServer) -> None:
        self.server = server
        self.control = ControlSocket(server)
        self.http: SidePort | None = None

    async def start(self) -> None:
        config = self.server.config
        await self.control.start()
        if config.http_port is None:
            return
        from mailslot.server.http import SidePort  # aiohttp: imported only when used

        host = config.http_host or config.host
        self.http = SidePort(self.server)
        try:
            await self.http.start(host, config.http_port)
        except OSError as error:
            await self.control.stop()
            raise StartupError(
                f"cannot listen for HTTP on {host}:{config.http_port}: {listen_failure(error)}"
            ) from None

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.stop()
        await self.control.stop()


def reload_tls(server: MailslotServer, config: ServerConfig) -> None:
    """Load the certificate and key again into the live TLS context: connections made
    from now on get the new certificate, connections already open keep theirs."""
    context = server.tls_context
    if context is None or config.tls_cert is None or config.tls_key is None:
        if (context is None) != (config.tls_cert is None):
            log.warning("turning TLS on or off needs a restart; TLS unchanged")
        return
    try:
        # Into a scratch context first, so that a bad file leaves the live one intact.
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            config.tls_cert, config.tls_key
        )
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as error:
        log.error("TLS certificate not reloaded, the old one stays: %s", error)
        return
    log.info("TLS certificate reloaded from %s", config.tls_cert)
