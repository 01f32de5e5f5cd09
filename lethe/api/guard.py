"""Every API route admits one role: checked before the body is read, declared in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from lethe.api.auth import Caller, Role, TokenStore

ROLE_KEY = "x-lethe-role"
bearer_scheme = HTTPBearer(auto_error=False, description="a token from `lethe api token create --role ROLE`")


def only(role: Role) -> dict[str, Any]:
    """Keyword arguments of a route that only `role` may call."""
    return {"dependencies": [Security(bearer_scheme)], "openapi_extra": {ROLE_KEY: role.value}}


def _unauthorized(detail: str, error: str | None = None) -> HTTPException:
    challenge = "Bearer" + (f' error="{error}"' if error else "")
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def authorize(request: Request, tokens: TokenStore, role: Role) -> Caller:
    """The caller if the request bears a valid token of `role`; 401 or 403 otherwise."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized(f"this route needs a bearer token of role {role.value!r} "
                            "(header `Authorization: Bearer <token>`); `lethe api token create` makes one")
    caller = tokens.authenticate(token)
    if caller is None:
        raise _unauthorized("the bearer token is not valid (unknown or revoked); ask for a new one",
                            "invalid_token")
    if caller.role is not role:
        raise HTTPException(403, f"this route needs a token of role {role.value!r}; yours has role "
                                 f"{caller.role.value!r}")
    return caller


class GuardedRoute(APIRoute):
    """An API route that checks the caller's token and role before FastAPI reads the request's body."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any):
        role = (kwargs.get("openapi_extra") or {}).get(ROLE_KEY)
        if role is None:  # an unguarded API route would be a hole: refuse to build the app
            raise ValueError(f"route {path} declares no role; add **only(Role.X) to its decorator")
        self.role = Role(role)  # before super().__init__, which builds the handler
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler, role = super().get_route_handler(), self.role

        async def guarded(request: Request) -> Response:
            request.state.caller = authorize(request, request.app.state.services.tokens, role)
            return await handler(request)

        return guarded


def current_caller(request: Request) -> Caller:
    """The authorized caller of this request (set by GuardedRoute)."""
    return request.state.caller


CallerDep = Annotated[Caller, Depends(current_caller)]
