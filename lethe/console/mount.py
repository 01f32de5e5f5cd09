"""Adding the console to the API's app: its pages, its session store, and the larger body its upload needs."""

from __future__ import annotations

from fastapi import FastAPI

from lethe.console import pages_auditor, pages_engineer, pages_legal, pages_session
from lethe.console.pages_auditor import VERIFY_MAX_BYTES, VERIFY_PATH
from lethe.console.sessions import SessionStore

__all__ = ["LARGER_BODIES", "install_console"]

# The one console form that takes more than the API's 1 MiB: an attestation bundle and a key registry.
LARGER_BODIES = {VERIFY_PATH: VERIFY_MAX_BYTES}


def install_console(app: FastAPI) -> None:
    """Add the console's pages (and its in-memory session store) to the API's app."""
    app.state.console_sessions = SessionStore()
    for module in (pages_session, pages_legal, pages_auditor, pages_engineer):
        app.include_router(module.build_router())
