"""The auditor's routes: the request register, attestation bundles, reports and the key registry."""

from __future__ import annotations

import pathlib
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import HTMLResponse

import lethe.api.responses as responses
from lethe.api.auth import Role
from lethe.api.guard import GuardedRoute, only
from lethe.api.routes_legal import RequestId
from lethe.api.services import Services, ServicesDep
from erasure.keyring import KeyringPaths
from erasure.requests import load_request, request_dir

NOT_REPORTED = "has no report yet (it is built after the attest step)"


def _register_rows() -> Any:
    """`list[RegisterRow]` for a precise schema; a list of objects while erasure.reporting is not there."""
    try:
        from erasure.reporting import RegisterRow
    except ImportError:
        return list[dict[str, Any]]
    return list[RegisterRow]


def _document(description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": responses.JSON_DOCUMENT, "description": description}}


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["auditor"], route_class=GuardedRoute, responses=responses.AUTH)
    run_file_errors = {**responses.NO_RUN_FILE, **responses.INVALID}

    @router.get("/register", response_model=_register_rows(), **only(Role.AUDITOR))
    def request_register(svc: ServicesDep) -> Any:
        """Every erasure request with its deadline, status, verdict and whether it was attested."""
        from erasure.reporting import register

        # Point at the report through the API rather than at a file on the server.
        return [row.model_copy(update={"report": f"/v1/requests/{row.id}/report"}) if row.report else row
                for row in register(svc.state_dir)]

    @router.get("/requests/{request_id}/attestation", response_class=Response, **only(Role.AUDITOR),
                responses={**_document("the attestation bundle, byte for byte"), **run_file_errors})
    def attestation_bundle(request_id: RequestId, svc: ServicesDep) -> Response:
        """The signed attestation bundle (DSSE envelope, log proof, checkpoint) byte for byte."""
        path = run_file(svc, request_id, "attestation.bundle.json", "has not been attested yet")
        return Response(path.read_bytes(), media_type="application/json")

    @router.get("/requests/{request_id}/report", response_class=HTMLResponse, **only(Role.AUDITOR),
                response_description="the human-readable report",
                responses=responses.as_json({**responses.AUTH, **run_file_errors}))
    def report_html(request_id: RequestId, svc: ServicesDep) -> HTMLResponse:
        """The request's HTML report."""
        return HTMLResponse(run_file(svc, request_id, "report.html", NOT_REPORTED).read_bytes())

    @router.get("/requests/{request_id}/report.json", response_class=Response, **only(Role.AUDITOR),
                responses={**_document("the report's data"), **run_file_errors})
    def report_json(request_id: RequestId, svc: ServicesDep) -> Response:
        """The request's report as JSON."""
        path = run_file(svc, request_id, "report.json", NOT_REPORTED)
        return Response(path.read_bytes(), media_type="application/json")

    @router.get("/keys", response_class=Response, **only(Role.AUDITOR),
                responses={**_document("the key registry"), **responses.NOT_YET})
    def key_registry(svc: ServicesDep) -> Response:
        """The key registry (public keys, purposes, validity windows) that signatures resolve in."""
        return Response(registry_file(svc).read_bytes(), media_type="application/json")

    return router


def registry_file(svc: Services, instead: str = "") -> pathlib.Path:
    """This server's key registry; 404 before the first attestation (which creates it), with what to do `instead`
    when the caller has another way."""
    path = KeyringPaths.under(svc.state_dir).registry
    if not path.is_file():
        raise HTTPException(404, "no key registry yet: it is created with the signing keys at the first "
                                 "attestation" + (f"; {instead}" if instead else ""))
    return path


def run_file(svc: Services, request_id: str, name: str, missing: str) -> pathlib.Path:
    """A file of a request's run folder; 404 for a request never filed, or a file not written yet."""
    load_request(svc.state_dir, request_id)  # 404 for a request that was never filed
    path = request_dir(svc.state_dir, request_id) / name
    if not path.is_file():
        raise HTTPException(404, f"request {request_id} {missing}; GET /v1/requests/{request_id} "
                                 "(role legal) shows the steps done")
    return path
