"""Signing in with an API token, signing out, the console's home and its stylesheet."""

from __future__ import annotations

import hmac
import logging
import secrets
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from lethe.api.auth import Role, token_digest
from lethe.console.rendering import render
from lethe.console.routing import ANY, PUBLIC, ConsoleRoute, SignedInDep, page_for, sessions_of, signed_in_caller
from lethe.console.sessions import SESSION_COOKIE, SIGN_IN_COOKIE, clear_cookie, set_cookie

log = logging.getLogger(__name__)
HOME = {Role.LEGAL: "/console/legal", Role.AUDITOR: "/console/auditor", Role.ENGINEER: "/console/engineer"}
STYLESHEET = files("lethe.console").joinpath("static", "console.css")


def _sign_in_page(request: Request, status: int = 200, problem: str | None = None) -> Response:
    """The sign-in form, with a fresh double-submit CSRF value (cookie and hidden field) for it."""
    value = secrets.token_urlsafe(32)
    response = render(request, "sign_in.html.j2", status=status, title="Sign in", sign_in_csrf=value,
                      problem=problem)
    set_cookie(response, request, SIGN_IN_COOKIE, value, max_age=3600)
    return response


def home(request: Request) -> Response:
    """The signed-in caller's own start page, or the sign-in page."""
    signed_in = signed_in_caller(request)
    target = HOME[signed_in.caller.role] if signed_in else "/console/sign-in"
    return RedirectResponse(target, status_code=303)


def sign_in_form(request: Request) -> Response:
    return _sign_in_page(request)


def sign_in(request: Request, token: Annotated[str, Form()] = "",
            csrf_token: Annotated[str, Form()] = "") -> Response:
    """Trade a valid API token for a session cookie; the token itself is neither kept nor shown again."""
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf_token.encode()):
        return _sign_in_page(request, 403, "the sign-in form had expired or came from elsewhere; sign in again")
    digest = token_digest(token.strip())
    caller = request.app.state.services.tokens.caller_of_digest(digest) if token.strip() else None
    if caller is None:
        return _sign_in_page(request, 401, "that token is not valid (unknown or revoked); ask for a new one, "
                                           "made with `lethe api token create`")
    session = sessions_of(request).start(digest)
    log.info("console: token %r signed in (role %s)", caller.name, caller.role.value)
    response = RedirectResponse(HOME[caller.role], status_code=303)
    set_cookie(response, request, SESSION_COOKIE, session.id)
    clear_cookie(response, request, SIGN_IN_COOKIE)
    return response


def sign_out(request: Request, signed_in: SignedInDep) -> Response:
    sessions_of(request).end(signed_in.session.id)
    request.state.console = None
    response = render(request, "signed_out.html.j2", title="Signed out")
    clear_cookie(response, request, SESSION_COOKIE)
    return response


def stylesheet() -> Response:
    """The one stylesheet, from the package (no CDN, no web font)."""
    return Response(STYLESHEET.read_bytes(), media_type="text/css",
                    headers={"Cache-Control": "no-cache"})


def build_router() -> APIRouter:
    router = APIRouter(prefix="/console", route_class=ConsoleRoute)
    router.add_api_route("", home, methods=["GET"], **page_for(PUBLIC))
    router.add_api_route("/sign-in", sign_in_form, methods=["GET"], **page_for(PUBLIC))
    router.add_api_route("/sign-in", sign_in, methods=["POST"], **page_for(PUBLIC))
    router.add_api_route("/sign-out", sign_out, methods=["POST"], **page_for(ANY))
    router.add_api_route("/static/console.css", stylesheet, methods=["GET"], **page_for(PUBLIC))
    return router
