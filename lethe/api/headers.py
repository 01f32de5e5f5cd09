"""Headers every answer carries, and the body size the API reads (answered in JSON, as every error is, but
under a prefix that has its own pages for it: the console's).

Answers hold request ids, verdicts and reports: never cached (`no-store`), never sniffed into another type
(`nosniff`), never framed, and the report HTML may run no script and load nothing (its CSS is inline).
"""

from __future__ import annotations

import json
from collections.abc import Callable

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


# A prefix's own answer to a body over its limit (the request's scope -> an ASGI response, e.g. an HTML page).
TooLargeAnswer = Callable[[Scope], ASGIApp]
TOO_LARGE = f"the body is over {MAX_BODY_BYTES // 2**20} MiB; an erasure request is a few identifiers"


def _too_large(limit: int) -> str:
    return TOO_LARGE if limit == MAX_BODY_BYTES else f"the body is over {limit // 2**20} MiB"


class BodyLimit:
    """Refuse bodies over `max_bytes`: at once when Content-Length says so, else when the stream passes it
    (raised inside the route, so FastAPI answers it as JSON like any HTTPException, and a console page as a
    page). `pages`: path prefix -> its own answer to a body refused at once, in place of the JSON one."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, larger: dict[str, int] | None = None,
                 pages: dict[str, TooLargeAnswer] | None = None):
        self.app, self.max_bytes, self.larger = app, max_bytes, dict(larger or {})
        self.pages = dict(pages or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.max_bytes)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, limit)(scope, receive, send)
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

    def _refuse(self, scope: Scope, limit: int) -> ASGIApp:
        """The answer to a body over `limit`, unread: its prefix's page, else the API's JSON."""
        path = scope.get("path", "")
        page = next((answer for prefix, answer in self.pages.items()
                     if path == prefix or path.startswith(prefix + "/")), None)
        if page is not None:
            return page(scope)
        body = json.dumps({"detail": _too_large(limit)}).encode()

        async def json_answer(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 413, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})

        return json_answer


def install_security_headers(app: FastAPI, larger: dict[str, int] | None = None,
                             pages: dict[str, TooLargeAnswer] | None = None) -> None:
    """Limit bodies (BodyLimit; `larger`: path -> a higher limit, e.g. an uploaded attestation bundle; `pages`:
    prefix -> its own answer to a body over the limit) and add SECURITY_HEADERS to every answer that sets none
    of its own, errors included."""
    app.add_middleware(BodyLimit, larger=larger, pages=pages)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
