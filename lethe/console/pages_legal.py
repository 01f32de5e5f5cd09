"""Legal's pages: the register, filing a request, one request's page, reviewing its scope, extending its deadline.

Each page does what an API route or CLI command of role legal does, through the same functions: filing is
`routes_legal.file_for`, the review is `erasure.filing.review_scope`, the extension `extend_request`.
Identifiers arrive only in a POSTed form, are keyed at once, and are never written back into a page.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from erasure.errors import InvalidRequestError
from erasure.filing import review_scope
from erasure.requests import RequestConflictError, extend_request
from lethe.api.auth import Role
from lethe.api.routes_legal import RequestId, file_for
from lethe.api.schemas import ExtensionBody, FileRequestBody
from lethe.api.services import ServicesDep
import lethe.console.forms as forms
from lethe.console.rendering import render
from lethe.console.routing import ConsoleRoute, SignedInDep, page_for
from lethe.console.views import register_lines, request_view

log = logging.getLogger(__name__)
LEGAL = page_for(Role.LEGAL)
Field = Annotated[str, Form()]


def _filing_page(request: Request, status: int = 200, problems: list[str] | None = None,
                 kept: dict[str, str] | None = None) -> Response:
    """The filing form; after a problem, the non-identifying fields as they were sent (never the identifiers)."""
    return render(request, "legal_file.html.j2", status=status, title="File an erasure request",
                  problems=problems or [], kept=kept or {})


def _request_page(request: Request, svc, request_id: str, status: int = 200, problems: list[str] | None = None,
                  notice: str | None = None) -> Response:
    view = request_view(svc.state_dir, request_id)
    return render(request, "legal_request.html.j2", status=status, title=f"Request {request_id}", view=view,
                  problems=problems or [], notice=notice)


def register_page(request: Request, svc: ServicesDep) -> Response:
    """Every request: status, step, days left against the deadline, verdict."""
    return render(request, "legal_register.html.j2", title="Erasure requests", lines=register_lines(svc.state_dir))


def filing_form(request: Request) -> Response:
    return _filing_page(request)


def file_request(request: Request, svc: ServicesDep, signed_in: SignedInDep, email: Field = "",
                 phone: Field = "", account: Field = "", name: Field = "", regime: Field = "",
                 received_on: Field = "", requester: Field = "", idempotency_key: Field = "",
                 review: Annotated[str | None, Form()] = None,
                 expand_identity: Annotated[str | None, Form()] = None) -> Response:
    """File a request as the API does; answer with a redirect to its page (nothing of the form in the URL)."""
    kept = {"regime": regime, "received_on": received_on, "requester": requester,
            "idempotency_key": idempotency_key}
    try:
        body = FileRequestBody(identifiers=forms.identifiers(email, phone, account, name), regime=regime,
                               received_at=forms.received_at(received_on), requester=requester,
                               idempotency_key=idempotency_key, review=forms.checkbox(review),
                               expand_identity=forms.checkbox(expand_identity))
        filed, new = file_for(svc, body)
    except (ValidationError, RequestValidationError) as exc:
        return _filing_page(request, 422, forms.problems(exc), kept)
    except InvalidRequestError as exc:
        return _filing_page(request, 422, [str(exc)], kept)
    except RequestConflictError as exc:
        return _filing_page(request, 409, [str(exc)], kept)
    log.info("console: erasure request %s %s by token %r", filed.id, "filed" if new else "seen again",
             signed_in.caller.name)
    return RedirectResponse(f"/console/legal/requests/{filed.id}?filed={'new' if new else 'again'}",
                            status_code=303)


def request_page(request: Request, request_id: RequestId, svc: ServicesDep, filed: str | None = None) -> Response:
    """One request: timeline, identity resolution, scope and its review, deadline and its extension."""
    notice = {"new": "Filed: identity and scope resolved.",
              "again": "Already filed under this idempotency key: this is that request."}.get(filed or "")
    return _request_page(request, svc, request_id, notice=notice)


async def review(request: Request, request_id: RequestId, svc: ServicesDep, signed_in: SignedInDep) -> Response:
    """Include or exclude reviewable records (`decision:<record id>` = include | exclude), with a reason."""
    form = await request.form()
    decisions = {str(k).removeprefix("decision:"): v for k, v in form.items() if str(k).startswith("decision:")}
    include = sorted(rid for rid, v in decisions.items() if v == "include")
    exclude = sorted(rid for rid, v in decisions.items() if v == "exclude")
    reason = str(form.get("reason") or "").strip()
    problems = [] if include or exclude else ["choose include or exclude for at least one record"]
    problems += [] if reason else ["reason: say why (it is kept with the scope)"]
    if problems:
        return _request_page(request, svc, request_id, 422, problems)
    try:
        result = await run_in_threadpool(review_scope, svc.erasure(), request_id, include, exclude,
                                         reason=reason)
    except InvalidRequestError as exc:
        return _request_page(request, svc, request_id, 422, [str(exc)])
    log.info("console: scope of %s reviewed by token %r", request_id, signed_in.caller.name)
    notice = (f"Review recorded: {len(result['included'])} included, {len(result['excluded'])} excluded; "
              f"{len(result['still_borderline'])} borderline left.")
    return _request_page(request, svc, request_id, notice=notice)


def extend(request: Request, request_id: RequestId, svc: ServicesDep, signed_in: SignedInDep,
           reason: Field = "") -> Response:
    """Extend the deadline once, by the regime's extension, recording why."""
    try:
        body = ExtensionBody(reason=reason)
        extended = extend_request(svc.state_dir, svc.graph(), request_id, body.reason)
    except ValidationError as exc:
        return _request_page(request, svc, request_id, 422, forms.problems(exc))
    except InvalidRequestError as exc:
        return _request_page(request, svc, request_id, 400, [str(exc)])
    log.info("console: erasure request %s extended by token %r", extended.id, signed_in.caller.name)
    return _request_page(request, svc, request_id,
                         notice=f"Deadline extended to {extended.extended_due_at:%Y-%m-%d}.")


def build_router() -> APIRouter:
    router = APIRouter(prefix="/console/legal", route_class=ConsoleRoute)
    router.add_api_route("", register_page, methods=["GET"], **LEGAL)
    router.add_api_route("/file", filing_form, methods=["GET"], **LEGAL)
    router.add_api_route("/file", file_request, methods=["POST"], **LEGAL)
    router.add_api_route("/requests/{request_id}", request_page, methods=["GET"], **LEGAL)
    router.add_api_route("/requests/{request_id}/review", review, methods=["POST"], **LEGAL)
    router.add_api_route("/requests/{request_id}/extension", extend, methods=["POST"], **LEGAL)
    return router
