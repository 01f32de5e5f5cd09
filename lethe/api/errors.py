"""Lethe's errors as HTTP answers, in one place: a status, and a message that says what to fix.

Validation errors name the field and the problem but never echo the value sent: an erasure request's
body holds a person's identifiers, and FastAPI's default answer would send them back (and into logs).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from attestation.errors import AttestationError, ProofError
from lethe.api.schemas import ConflictProblem, FieldProblem, Problem, ValidationProblem
from erasure.errors import ConfigurationError, ErasureError, InvalidRequestError
from lethe.errors import Neo4jServerError
from erasure.requests import RequestConflictError, RequestNotFoundError
from lineage.errors import GraphUnavailableError, LineageError, NotFoundError, PepperError

log = logging.getLogger(__name__)

# First match wins: specific classes before their bases.
STATUS_OF: list[tuple[type[Exception], int]] = [
    (RequestNotFoundError, 404),
    (NotFoundError, 404),
    (RequestConflictError, 409),
    (GraphUnavailableError, 503),
    (Neo4jServerError, 503),
    (ConfigurationError, 503),  # the server's settings, not the caller's input, are wrong
    (PepperError, 503),
    (ProofError, 400),  # e.g. a tree size beyond the log
    (LineageError, 400),
    (InvalidRequestError, 400),
    (ValidationError, 500),  # a model built inside a route: a bug, answered without its input (_known_error)
    (AttestationError, 500),  # the log or key files on disk are broken: the operator must look
    (ErasureError, 500),  # e.g. a run folder's step file is malformed
]
MAX_FIELD_PROBLEMS = 20
# A location part that looks like a field name is named; anything else (a dict key a caller sent,
# which might be an identifier) is not echoed.
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


def status_for(exc: BaseException) -> int | None:
    return next((status for kind, status in STATUS_OF if isinstance(exc, kind)), None)


def safe_loc(loc: Sequence[Any]) -> list[str | int]:
    return [part if isinstance(part, int) or _FIELD_NAME.match(str(part)) else "<field>" for part in loc]


def field_error(loc: Sequence[str | int], message: str) -> RequestValidationError:
    """A validation error found by a route (an identifier that cannot be keyed), answered like the rest."""
    return RequestValidationError([{"loc": tuple(loc), "msg": message, "type": "value_error"}])


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [FieldProblem(loc=safe_loc(e.get("loc", ())), msg=str(e.get("msg", "invalid")))
                for e in exc.errors()]
    shown = problems[:MAX_FIELD_PROBLEMS]
    more = f"; and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    detail = "invalid request: " + "; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in shown) + more
    return JSONResponse(ValidationProblem(detail=detail, errors=shown).model_dump(), status_code=422)


async def _known_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ValidationError):
        # A model built inside a route failed: a bug, and its message would quote the input.
        where = ", ".join(".".join(map(str, safe_loc(e["loc"]))) for e in exc.errors()[:MAX_FIELD_PROBLEMS])
        log.error("%s %s: internal validation of %s failed at %s", request.method, request.url.path,
                  exc.title, where)
        problem = Problem(detail=f"internal error: {exc.title} did not validate ({where})")
        return JSONResponse(problem.model_dump(), status_code=500)
    status = status_for(exc) or 500
    if status >= 500:
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    if isinstance(exc, RequestConflictError):
        return JSONResponse(ConflictProblem(detail=str(exc), fields=exc.fields).model_dump(), status_code=status)
    return JSONResponse(Problem(detail=public_detail(exc, status)).model_dump(), status_code=status)


def public_detail(exc: Exception, status: int) -> str:
    """What a caller may read: a 503 says what kind of trouble (the URI, paths and causes go to the log), a
    404 does not repeat the id it was given."""
    if status == 503 and isinstance(exc, (ConfigurationError, PepperError)):
        return "the server is not configured correctly; its operator finds which setting in Lethe's log"
    if status == 503:
        return "the lineage graph (Neo4j) is unavailable; try again shortly, and if it lasts tell the operator"
    if status == 404 and isinstance(exc, RequestNotFoundError):
        return "no erasure request with that id; the register lists the filed ones"
    if status == 404:
        return "nothing in the lineage graph has that id; check it against `lethe datasets`"
    return str(exc)


def install_error_handlers(app: FastAPI) -> None:
    """Answer validation errors without their input, and Lethe's errors with their status and message."""
    app.add_exception_handler(RequestValidationError, _invalid_request)
    for kind, _ in STATUS_OF:
        app.add_exception_handler(kind, _known_error)
