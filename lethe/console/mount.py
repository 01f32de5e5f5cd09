"""Adding the console to the API's app: its pages, its session store, the larger body its upload needs, and the
page that answers a form whose body is over its limit."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Scope

from lethe.console import pages_auditor, pages_engineer, pages_legal, pages_session
from lethe.console.rendering import error_page
from lethe.console.routing import signed_in_caller
from lethe.console.sessions import SessionStore
from lethe.console.uploads import LARGER_BODIES, PREFIX, too_large_message

__all__ = ["LARGER_BODIES", "TOO_LARGE_PAGES", "install_console", "too_large_page"]


def too_large_page(scope: Scope) -> ASGIApp:
    """The 413 page for a console form refused unread (its body over the limit): the console's layout, with the
    role when a session is signed in, saying the limit and what to do. The connection closes after it, as the
    body will not be read."""
    request = Request(scope)
    request.state.console = signed_in_caller(request)
    page = error_page(request, 413, too_large_message(request.url.path))
    page.headers["Connection"] = "close"
    return page


# A body over its limit under /console is answered with the console's page (the API's routes keep their JSON).
TOO_LARGE_PAGES = {PREFIX: too_large_page}


def install_console(app: FastAPI) -> None:
    """Add the console's pages (and its in-memory session store) to the API's app."""
    app.state.console_sessions = SessionStore()
    for module in (pages_session, pages_legal, pages_auditor, pages_engineer):
        app.include_router(module.build_router())
