"""The web client's files at `/` on the HTTP side port.

The files live in the package (mailslot/web/static) and are read, hashed and
gzipped once when the routes are added: every answer then comes from memory,
with an ETag so that a browser revalidates cheaply (`304`), and a strict
Content-Security-Policy (no inline script or style, no other origin).
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

# 'self' covers ws:// and wss:// to the page's own host in CSP level 3.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# Names do not change with their contents, so every file is revalidated (cheap: 304).
CACHE_CONTROL = "no-cache"
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    gzipped: bytes | None  # None when gzip would not make it smaller
    content_type: str
    etag: str


def load_static_files() -> dict[str, StaticFile]:
    """Every file of the web client, by its URL path."""
    files: dict[str, StaticFile] = {}
    root = resources.files("mailslot.web") / "static"
    for entry in sorted(root.iterdir(), key=lambda item: item.name):
        if not entry.is_file():
            continue
        body = entry.read_bytes()
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        content_type = TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0]
        if content_type is None:
            continue
        compressed = gzip.compress(body, compresslevel=9, mtime=0)
        path = "/" if entry.name == "index.html" else f"/{entry.name}"
        files[path] = StaticFile(
            body=body,
            gzipped=compressed if len(compressed) < len(body) else None,
            content_type=content_type,
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        )
    return files


def add_web_routes(app: web.Application) -> None:
    files = load_static_files()

    async def serve(request: web.Request) -> web.StreamResponse:
        found = files.get(request.path)
        if found is None:
            raise web.HTTPNotFound()
        headers = {
            **SECURITY_HEADERS,
            "Cache-Control": CACHE_CONTROL,
            "ETag": found.etag,
            "Vary": "Accept-Encoding",
        }
        if found.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        body = found.body
        if found.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
            body = found.gzipped
            headers["Content-Encoding"] = "gzip"
        charset = "utf-8" if found.content_type.startswith(("text/", "image/svg")) else None
        response = web.Response(body=body, headers=headers)
        response.content_type = found.content_type
        if charset is not None:
            response.charset = charset
        return response

    for path in files:
        app.router.add_get(path, serve)
