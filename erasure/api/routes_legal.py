"""Legal's routes: file an erasure request, follow it, extend its deadline."""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from erasure.api import responses
from erasure.api.auth import Role
from erasure.api.guard import CallerDep, GuardedRoute, only
from erasure.api.schemas import (REQUEST_ID_PATTERN, ExtensionBody, FileRequestBody, Problem, RequestProgress,
                                 RequestSummary)
from erasure.api.services import ServicesDep
from erasure.requests import extend_request, file_request, load_request, request_dir

log = logging.getLogger(__name__)

RequestId = Annotated[str, Path(pattern=REQUEST_ID_PATTERN, description="an erasure request id, er-<24 hex>")]
ALREADY_FILED = {200: {"model": RequestSummary,
                       "description": "already filed under this idempotency key: the same request"}}
CONFLICT = {409: {"model": Problem, "description": "the idempotency key names a different request"}}
NOT_EXTENDED = {400: {"model": Problem, "description": "extended before, or the body is not UTF-8 JSON"}}


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/requests", tags=["legal"], route_class=GuardedRoute,
                       responses={**responses.AUTH, **responses.INVALID, **responses.UNAVAILABLE})

    @router.post("", status_code=201, response_model=RequestSummary, **only(Role.LEGAL),
                 responses={**ALREADY_FILED, **CONFLICT, **responses.BAD_BODY})
    def file_erasure_request(body: FileRequestBody, response: Response, svc: ServicesDep,
                             caller: CallerDep) -> RequestSummary:
        """File a subject's erasure request (idempotent); identifiers are keyed at once and never kept."""
        svc.subject_keys(body.identifiers, ("body", "identifiers"))  # a 422 naming the field, before writing
        filed, new = file_request(svc.state_dir, svc.graph(), svc.keyer, body.intake(), review=body.review)
        if not new:
            response.status_code = 200
        log.info("erasure request %s %s by token %r", filed.id, "filed" if new else "seen again", caller.name)
        return RequestSummary.of(filed)

    @router.get("/{request_id}", response_model=RequestProgress, responses=responses.NO_REQUEST,
                **only(Role.LEGAL))
    def request_status(request_id: RequestId, svc: ServicesDep) -> RequestProgress:
        """Where a request stands: status, deadlines, the steps done and, once attested, the verdict."""
        request = load_request(svc.state_dir, request_id)
        steps = request_dir(svc.state_dir, request_id) / "steps"
        done = sorted(p.stem for p in steps.glob("*.json")) if steps.is_dir() else []
        return RequestProgress.of(request, steps_done=done, verdict=_verdict(steps / "attest.json"))

    @router.post("/{request_id}/extension", response_model=RequestSummary, **only(Role.LEGAL),
                 responses={**responses.NO_REQUEST, **NOT_EXTENDED})
    def extend_deadline(request_id: RequestId, body: ExtensionBody, svc: ServicesDep,
                        caller: CallerDep) -> RequestSummary:
        """Extend the deadline once, by the regime's extension, recording why."""
        request = extend_request(svc.state_dir, svc.graph(), request_id, body.reason)
        log.info("erasure request %s extended by token %r", request.id, caller.name)
        return RequestSummary.of(request)

    return router


def _verdict(attest_step: pathlib.Path) -> str | None:
    """The verdict the attest step recorded (`result.verdict`), or None before it ran."""
    if not attest_step.is_file():
        return None
    try:
        data = json.loads(attest_step.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HTTPException(500, f"{attest_step.name} of this request is not valid JSON ({exc.msg}); "
                                 "rerun the attest step") from None
    verdict = data.get("result", {}).get("verdict") if isinstance(data, dict) else None
    if not isinstance(verdict, str):
        log.warning("%s holds no result.verdict; reporting the request's verdict as unknown", attest_step)
        return None
    return verdict
