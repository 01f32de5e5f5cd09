"""Every console page admits one role, as the API route it stands beside does; forms carry a CSRF token.

A page declares its role with `**page_for(Role.X)` (or `page_for(ANY)` for sign-out, `page_for(PUBLIC)` for
sign-in); `ConsoleRoute` refuses to build a page without one. Before the page runs, the session cookie is
looked up and the token behind it asked for its role: no session is a redirect to the sign-in page (a form
sent without one is a 401 page), another role is a 403 page worded as the API's 403, and a POST whose form
lacks the session's CSRF token is a 403 page. Lethe's errors become pages with the API's status and message; a
body over its limit, a 413 page naming the limit (`lethe.console.uploads`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError

from lethe.api.auth import Caller, Role
from lethe.api.errors import STATUS_OF, public_detail, safe_loc, status_for
from lethe.console.rendering import error_page
from lethe.console.sessions import SESSION_COOKIE, Session, SessionStore
from lethe.console.uploads import too_large_message

PAGE_ROLE = "x-lethe-console-role"
ANY, PUBLIC = "any", "public"  # any signed-in role (sign-out); anyone (sign-in, the stylesheet)
CSRF_FIELD = "csrf_token"
SIGN_IN = "/console/sign-in"
LETHE_ERRORS = tuple(kind for kind, _ in STATUS_OF if kind is not ValidationError)


def page_for(role: Role | str) -> dict[str, Any]:
    """Keyword arguments of a console page that only `role` may open (or ANY signed-in role, or PUBLIC)."""
    return {"openapi_extra": {PAGE_ROLE: role.value if isinstance(role, Role) else role}}


@dataclass(frozen=True)
class SignedIn:
    """The caller of a console page and their session (whose CSRF token the page's forms carry)."""

    caller: Caller
    session: Session

    @property
    def csrf(self) -> str:
        return self.session.csrf


class ConsoleError(Exception):
    """A page's answer that is an error page: its status and what to do."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def sessions_of(request: Request) -> SessionStore:
    return request.app.state.console_sessions


def signed_in_caller(request: Request) -> SignedIn | None:
    """The signed-in caller of this request, if its session is live and its token still valid."""
    session = sessions_of(request).get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    caller = request.app.state.services.tokens.caller_of_digest(session.token_digest)
    if caller is None:
        sessions_of(request).end(session.id)  # the token was revoked: so is every session it opened
        return None
    return SignedIn(caller, session)


async def _admit(request: Request, role: str) -> Response | None:
    """None when the request may go on to the page; else the page that refuses it."""
    signed_in = signed_in_caller(request)
    request.state.console = signed_in
    if role == PUBLIC:
        return None
    if signed_in is None:
        if request.method in ("GET", "HEAD"):
            return RedirectResponse(SIGN_IN, status_code=303)
        raise ConsoleError(401, "your session has ended (or you never signed in): sign in with your token, then "
                                "send the form again")
    if role != ANY and signed_in.caller.role.value != role:
        raise ConsoleError(403, f"this page needs a token of role {role!r}; yours has role "
                                f"{signed_in.caller.role.value!r}")
    if request.method == "POST":
        form = await request.form()
        sent = form.get(CSRF_FIELD)
        if not signed_in.session.csrf_matches(sent if isinstance(sent, str) else None):
            raise ConsoleError(403, "the form's CSRF token is missing or is not this session's: reload the page "
                                    "and send the form again")
    return None


def _answer_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ConsoleError):
        return error_page(request, exc.status, exc.message)
    if isinstance(exc, HTTPException):  # 413: a body that passed its limit while it streamed in (BodyLimit)
        detail = too_large_message(request.url.path) if exc.status_code == 413 else str(exc.detail)
        return error_page(request, exc.status_code, detail)
    if isinstance(exc, RequestValidationError):  # a malformed request id in the address: named, not echoed
        where = "; ".join(f"{'.'.join(map(str, safe_loc(e.get('loc', ()))))}: {e.get('msg', 'invalid')}"
                          for e in exc.errors()[:20])
        return error_page(request, 422, f"invalid request: {where}")
    status = status_for(exc) or 500
    return error_page(request, status, public_detail(exc, status))


class ConsoleRoute(APIRoute):
    """A console page: checks session, role and CSRF before the page runs; answers errors as pages."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any):
        role = (kwargs.get("openapi_extra") or {}).get(PAGE_ROLE)
        if role not in {*(r.value for r in Role), ANY, PUBLIC}:
            raise ValueError(f"console page {path} declares no role; add **page_for(Role.X) to its decorator")
        self.page_role = role
        kwargs["include_in_schema"] = False  # pages are not part of the API's OpenAPI document
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler, role = super().get_route_handler(), self.page_role

        async def page(request: Request) -> Response:
            try:
                refused = await _admit(request, role)
                return refused if refused is not None else await handler(request)
            except (ConsoleError, HTTPException, RequestValidationError, *LETHE_ERRORS) as exc:
                return _answer_error(request, exc)

        return page


def current(request: Request) -> SignedIn:
    """The signed-in caller of a page that admits only signed-in callers (set by ConsoleRoute)."""
    return request.state.console


SignedInDep = Annotated[SignedIn, Depends(current)]
