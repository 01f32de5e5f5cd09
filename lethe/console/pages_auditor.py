"""The auditor's pages: the register's reports, a request's report inline, downloads, verifying an uploaded bundle,
and the transparency log.

The files come through the API's own readers (`routes_auditor.run_file`, `routes_log.open_log`); an uploaded
bundle is checked by `attestation.verify_document`, the function behind `lethe attest verify`, and each of its
checks is a row with the same wording.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, Response, UploadFile

from attestation import (AttestationError, KeyRegistry, VerificationReport, verify_checkpoint,
                         verify_checkpoint_consistency, verify_document)
from attestation.encoding import b64encode
from erasure.reporting import register
from lethe.api.auth import Role
from lethe.api.routes_auditor import NOT_REPORTED, registry_file, run_file
from lethe.api.routes_legal import RequestId
from lethe.api.routes_log import latest_checkpoint_of, open_log
from lethe.api.services import Services, ServicesDep
from lethe.console.rendering import REPORT_CSP, render
from lethe.console.routing import ConsoleError, ConsoleRoute, page_for
from lethe.console.uploads import VERIFY_PATH, too_large_message
from lineage.limits import InputLimitError, read_bounded

AUDITOR = page_for(Role.AUDITOR)


def _download(data: bytes, filename: str) -> Response:
    return Response(data, media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _registry(svc: Services, uploaded: bytes | None) -> KeyRegistry:
    """The uploaded registry, else this server's (as `lethe attest verify` defaults to the machine's own)."""
    if uploaded:
        return KeyRegistry.from_json(uploaded, "the uploaded key registry")
    return KeyRegistry.load(registry_file(svc, instead="upload the registry the signer published"))


async def _read_upload(upload: UploadFile | None, what: str) -> bytes | None:
    if upload is None or not upload.filename:
        return None
    try:
        return read_bounded(upload.file, what)
    except InputLimitError:
        raise ConsoleError(413, too_large_message(VERIFY_PATH)) from None


def _verification(svc: Services, bundle: bytes, registry: bytes | None) -> tuple[VerificationReport | None, str]:
    """The verifier's report, or None and why no verification could start (a registry that cannot be read)."""
    try:
        keys = _registry(svc, registry)
    except AttestationError as exc:
        return None, str(exc)
    return verify_document(bundle, keys, now=datetime.now(timezone.utc)), ""


def _consistency(svc: Services, older: str, old_size: int | None) -> dict:
    """The proof that the log under its latest checkpoint extends an older size (or an older checkpoint, which
    is then checked against the proof under this server's registry)."""
    log = open_log(svc)
    note, size = latest_checkpoint_of(log)
    outcome: dict = {"checkpoint": note, "tree_size": size, "old_size": old_size, "verified": None}
    older = older.replace("\r\n", "\n").strip()  # a browser sends a textarea's lines with CRLF
    try:
        if older:
            registry = _registry(svc, None)
            outcome["old_size"] = verify_checkpoint(older + "\n", registry).size
            proof = log.consistency_proof(outcome["old_size"], size)
            old, new = verify_checkpoint_consistency(older + "\n", note, proof, registry)
            outcome["verified"] = f"the log grew from size {old.size} to {new.size} without changing what it held"
        elif old_size is None:
            return outcome
        outcome["proof"] = [b64encode(h) for h in log.consistency_proof(outcome["old_size"], size)]
    except AttestationError as exc:
        outcome["problem"] = str(exc)
    return outcome


def reports(request: Request, svc: ServicesDep) -> Response:
    """Every request with its verdict, and whether its attestation and report are there."""
    return render(request, "auditor_index.html.j2", title="Reports and attestations", rows=register(svc.state_dir))


def request_report(request: Request, request_id: RequestId, svc: ServicesDep) -> Response:
    """The request's report inline, and its attestation bundle to download."""
    row = next((r for r in register(svc.state_dir) if r.id == request_id), None)
    if row is None:
        run_file(svc, request_id, "request.json", "")  # 404 with the API's wording
    return render(request, "auditor_request.html.j2", title=f"Report of {request_id}", row=row)


def report_alone(request_id: RequestId, svc: ServicesDep) -> Response:
    """The report as the engine wrote it (framed by the request's page; open it alone to print it)."""
    html = run_file(svc, request_id, "report.html", NOT_REPORTED).read_bytes()
    return Response(html, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": REPORT_CSP, "X-Frame-Options": "SAMEORIGIN"})


def bundle_download(request_id: RequestId, svc: ServicesDep) -> Response:
    path = run_file(svc, request_id, "attestation.bundle.json", "has not been attested yet")
    return _download(path.read_bytes(), f"{request_id}.attestation.bundle.json")


def key_registry(svc: ServicesDep) -> Response:
    return _download(registry_file(svc).read_bytes(), "lethe-key-registry.json")


def verify_form(request: Request) -> Response:
    return render(request, "auditor_verify.html.j2", title="Verify an attestation", report=None, problem="")


async def verify(request: Request, svc: ServicesDep, bundle: Annotated[UploadFile | None, File()] = None,
                 registry: Annotated[UploadFile | None, File()] = None) -> Response:
    """`lethe attest verify` on an uploaded bundle (or bare envelope): each check a row, pass or fail."""
    data = await _read_upload(bundle, "the uploaded attestation")
    if data is None:
        return render(request, "auditor_verify.html.j2", status=422, title="Verify an attestation", report=None,
                      problem="attestation: choose the bundle file to verify")
    report, problem = _verification(svc, data, await _read_upload(registry, "the uploaded key registry"))
    return render(request, "auditor_verify.html.j2", status=200 if report else 422, title="Verify an attestation",
                  report=report, problem=problem, filename=bundle.filename)


def log_page(request: Request, svc: ServicesDep) -> Response:
    """The transparency log's latest signed checkpoint, and a form for consistency from an older one."""
    return render(request, "auditor_log.html.j2", title="Transparency log", outcome=_consistency(svc, "", None))


def consistency(request: Request, svc: ServicesDep, old_size: Annotated[str, Form()] = "",
                older_checkpoint: Annotated[str, Form()] = "") -> Response:
    size = old_size.strip()
    if size and not size.isdigit():
        raise HTTPException(422, "older size: a whole number of entries, 0 or more")
    outcome = _consistency(svc, older_checkpoint, int(size) if size else None)
    return render(request, "auditor_log.html.j2", status=400 if outcome.get("problem") else 200,
                  title="Transparency log", outcome=outcome)


def build_router() -> APIRouter:
    router = APIRouter(prefix="/console/auditor", route_class=ConsoleRoute)
    router.add_api_route("", reports, methods=["GET"], **AUDITOR)
    router.add_api_route("/requests/{request_id}", request_report, methods=["GET"], **AUDITOR)
    router.add_api_route("/requests/{request_id}/report.html", report_alone, methods=["GET"], **AUDITOR)
    router.add_api_route("/requests/{request_id}/attestation.bundle.json", bundle_download, methods=["GET"], **AUDITOR)
    router.add_api_route("/keys.json", key_registry, methods=["GET"], **AUDITOR)
    router.add_api_route("/verify", verify_form, methods=["GET"], **AUDITOR)
    router.add_api_route("/verify", verify, methods=["POST"], **AUDITOR)
    router.add_api_route("/log", log_page, methods=["GET"], **AUDITOR)
    router.add_api_route("/log", consistency, methods=["POST"], **AUDITOR)
    return router
