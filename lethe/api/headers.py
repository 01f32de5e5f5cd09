"""Headers every answer carries, and the body size the API reads (answered in JSON, as every error is).

Answers hold request ids, verdicts and reports: never cached (`no-store`), never sniffed into another type
(`nosniff`), never framed, and the report HTML may run no script and load nothing (its CSS is inline).
"""

from __future__ import annotations

import json

from fastapi import FastAPI, HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 2**20  # 1 MiB: a request body is a few identifiers and a reason
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


TOO_LARGE = f"the body is over {MAX_BODY_BYTES // 2**20} MiB; an erasure request is a few identifiers"


def _too_large(limit: int) -> str:
    return TOO_LARGE if limit == MAX_BODY_BYTES else f"the body is over {limit // 2**20} MiB"


class BodyLimit:
    """Refuse bodies over `max_bytes`: at once when Content-Length says so, else when the stream passes it
    (raised inside the route, so FastAPI answers it as JSON like any HTTPException)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, larger: dict[str, int] | None = None):
        self.app, self.max_bytes, self.larger = app, max_bytes, dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.max_bytes)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            body = json.dumps({"detail": _too_large(limit)}).encode()
            await send({"type": "http.response.start", "status": 413, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def bounded() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, bounded, send)


def install_security_headers(app: FastAPI, larger: dict[str, int] | None = None) -> None:
    """Limit bodies (BodyLimit; `larger`: path -> a higher limit, e.g. an uploaded attestation bundle) and add
    SECURITY_HEADERS to every answer that sets none of its own, errors included."""
    app.add_middleware(BodyLimit, larger=larger)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
