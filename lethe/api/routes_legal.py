"""Legal's routes: file an erasure request, follow it, extend its deadline."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Path, Response

import lethe.api.responses as responses
from lethe.api.auth import Role
from lethe.api.guard import CallerDep, GuardedRoute, only
from lethe.api.schemas import (REQUEST_ID_PATTERN, ConflictProblem, ExtensionBody, FiledRequestOut, FileRequestBody,
                                 IdentifierOut, Problem, RequestProgress, RequestSummary, ScopeCounts, VerdictOut)
from lethe.api.services import Services, ServicesDep
from erasure.filing import file_and_scope
from erasure.requests import FiledRequest, extend_request, load_request
from erasure.run_folder import RunSteps, step_results

log = logging.getLogger(__name__)

RequestId = Annotated[str, Path(pattern=REQUEST_ID_PATTERN, description="an erasure request id, er-<24 hex>")]
ALREADY_FILED = {200: {"model": FiledRequestOut,
                       "description": "already filed under this idempotency key: the same request"}}
CONFLICT = {409: {"model": ConflictProblem,
                  "description": "the idempotency key names a different request; `fields` says what differs"}}
NOT_EXTENDED = {400: {"model": Problem, "description": "extended before, or the body is not UTF-8 JSON"}}


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/requests", tags=["legal"], route_class=GuardedRoute,
                       responses={**responses.AUTH, **responses.INVALID, **responses.UNAVAILABLE})

    @router.post("", status_code=201, response_model=FiledRequestOut, **only(Role.LEGAL),
                 responses={**ALREADY_FILED, **CONFLICT, **responses.BAD_BODY})
    def file_erasure_request(body: FileRequestBody, response: Response, svc: ServicesDep,
                             caller: CallerDep) -> FiledRequestOut:
        """File a subject's erasure request (idempotent) and resolve the subject's identity and the scope while
        the identifiers are in memory; they are keyed at once and never kept."""
        filed, new = file_for(svc, body)
        if not new:
            response.status_code = 200
        log.info("erasure request %s %s by token %r", filed.id, "filed" if new else "seen again", caller.name)
        return _filed_out(filed, step_results(svc.state_dir, filed.id))

    @router.get("/{request_id}", response_model=RequestProgress, responses=responses.NO_REQUEST,
                **only(Role.LEGAL))
    def request_status(request_id: RequestId, svc: ServicesDep) -> RequestProgress:
        """Where a request stands: status, deadlines, the steps done and, once attested, the verdict."""
        request = load_request(svc.state_dir, request_id)
        steps = step_results(svc.state_dir, request_id)
        return RequestProgress.of(request, steps_done=sorted(steps.names), verdict=_verdict(steps))

    @router.post("/{request_id}/extension", response_model=RequestSummary, **only(Role.LEGAL),
                 responses={**responses.NO_REQUEST, **NOT_EXTENDED, **responses.TOO_LARGE})
    def extend_deadline(request_id: RequestId, body: ExtensionBody, svc: ServicesDep,
                        caller: CallerDep) -> RequestSummary:
        """Extend the deadline once, by the regime's extension, recording why."""
        request = extend_request(svc.state_dir, svc.graph(), request_id, body.reason)
        log.info("erasure request %s extended by token %r", request.id, caller.name)
        return RequestSummary.of(request)

    return router


def file_for(svc: Services, body: FileRequestBody) -> tuple[FiledRequest, bool]:
    """File (idempotently) and resolve identity and scope: the API's and the console's filing. The identifiers
    are keyed first, so one that cannot be is a validation error naming its field before anything is written."""
    svc.subject_keys(body.identifiers, ("body", "identifiers"))
    return file_and_scope(svc.erasure(), body.intake(), review=body.review, expand=body.expand_identity,
                          hops=body.hops)


def _filed_out(filed, steps: RunSteps) -> FiledRequestOut:
    """The filing's answer: the request, the identity found (kinds and decisions) and the scope's counts."""
    identity = steps.identity.identifiers if "identity" in steps else []
    records = steps.scope.records if "scope" in steps else None
    scope = None if records is None else ScopeCounts(
        in_scope=sum(r.included for r in records),
        borderline=sum(r.decision == "excluded_borderline" for r in records),
        per_reason=dict(Counter(reason for r in records for reason in r.reasons)))
    return FiledRequestOut.of(filed, scope=scope, identity=[
        IdentifierOut(kind=i.kind, hop=i.hop, decision=i.decision.value, owned_records=i.owned_records,
                      people=i.people, value_found=i.value_source is not None, linked_by=i.linked_by)
        for i in identity])


def _verdict(steps: RunSteps) -> VerdictOut | None:
    """The verdict the attest step recorded (status and reasons), or None before it ran."""
    return VerdictOut(**steps.attest.verdict.model_dump()) if "attest" in steps else None