"""The HTTP API of the erasure engine: `create_app` builds it from settings and a token store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lethe import wiring
import lethe.api.routes_auditor as routes_auditor
import lethe.api.routes_engineer as routes_engineer
import lethe.api.routes_legal as routes_legal
import lethe.api.routes_log as routes_log
from lethe.api.auth import TokenStore, default_token_path
from lethe.api.errors import install_error_handlers
from lethe.api.headers import install_security_headers
from lethe.api.schemas import Health
from lethe.api.services import Services
from lethe.console.mount import LARGER_BODIES, TOO_LARGE_PAGES, install_console
from lethe.settings import Settings
from lineage.local_files import private_dir, restrict_umask

DESCRIPTION = """\
Which models learned from a person, and proof that they no longer do.

Every `/v1` route admits one role (`x-lethe-role` in each operation): **legal** files and follows
erasure requests, **auditor** reads the register, attestations, reports, keys and the transparency
log, **engineer** asks blast-radius and preflight questions. Send `Authorization: Bearer <token>`;
`lethe api token create --role ROLE --name NAME` makes a token. Identifiers of a person only ever
travel in request bodies, and no answer repeats them. The same tokens sign in to the web console at `/console`.
"""


def create_app(settings: Settings, tokens: TokenStore | None = None) -> FastAPI:
    """The API app; refuses to build without a pepper, or without a token file (default in the state dir)."""
    restrict_umask()
    private_dir(settings.state_dir)
    keyer = wiring.subject_keyer(settings)
    if tokens is None:
        tokens = TokenStore.load(default_token_path(settings.state_dir))
    svc = Services(settings, tokens, keyer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        svc.close()

    # No /docs or /redoc (they load scripts from a CDN): the OpenAPI document is at /openapi.json. No slash
    # redirects (they would answer before the token is checked). Bodies over 1 MiB are a 413 (headers.py; a page under /console).
    app = FastAPI(title="Lethe erasure API", version="1", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, redirect_slashes=False)
    app.state.services = svc
    install_error_handlers(app)
    install_security_headers(app, larger=LARGER_BODIES, pages=TOO_LARGE_PAGES)
    for module in (routes_legal, routes_auditor, routes_log, routes_engineer):
        app.include_router(module.build_router())
    install_console(app)  # the web pages under /console, on the same services, tokens and roles

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """Liveness: answers without a token and without touching Neo4j."""
        return Health()

    return app
