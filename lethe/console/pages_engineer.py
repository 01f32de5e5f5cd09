"""The engineer's pages: the blast radius of a subject (identifiers in a POSTed form) or of a dataset version, as a
picture of the lineage and a table, and the preflight of a dataset version with what blocks it.

Both answer through the API's own functions (`routes_engineer.blast_radius_for`, `queries.preflight`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from lethe.api.auth import Role
from lethe.api.routes_engineer import DatasetId, blast_radius_for
from lethe.api.schemas import BlastRadiusQuery
from lethe.api.services import Services, ServicesDep
import lethe.console.forms as forms
from lethe.console.lineage_picture import lineage_picture
from lethe.console.rendering import render
from lethe.console.routing import ConsoleRoute, page_for
from lineage.store import queries

ENGINEER = page_for(Role.ENGINEER)
Field = Annotated[str, Form()]


def _start_page(request: Request, svc: Services, status: int = 200, problems: list[str] | None = None) -> Response:
    return render(request, "engineer_index.html.j2", status=status, title="Blast radius and preflight",
                  datasets=queries.dataset_versions(svc.graph()), problems=problems or [])


def _query(email: str, phone: str, account: str, name: str, dataset: str, depth: str) -> BlastRadiusQuery:
    """The API's query from the form: the identifiers, or the dataset version when no identifier is given."""
    given = forms.identifiers(email, phone, account, name)
    start = {"subject": given} if given else ({"dataset": dataset.strip()} if dataset.strip() else {})
    return BlastRadiusQuery(**start, **({"depth": depth} if depth.strip() else {}))


def start(request: Request, svc: ServicesDep) -> Response:
    """The blast-radius form and the dataset versions, each with its preflight."""
    return _start_page(request, svc)


def blast_radius(request: Request, svc: ServicesDep, email: Field = "", phone: Field = "", account: Field = "",
                 name: Field = "", dataset: Field = "", depth: Field = "") -> Response:
    """Which datasets, runs, adapters and deployments learned from a subject or a dataset version."""
    try:
        radius = blast_radius_for(svc, _query(email, phone, account, name, dataset, depth))
    except (ValidationError, RequestValidationError) as exc:
        return _start_page(request, svc, 422, forms.problems(exc))
    start = "the subject's identifiers" if radius.start == "subject" else f"dataset version {dataset.strip()}"
    paths, truncated = radius.paths()
    return render(request, "engineer_blast.html.j2", title="Blast radius", radius=radius, start=start,
                  picture=lineage_picture(radius), paths=paths, truncated=truncated)


def preflight(request: Request, dataset: DatasetId, svc: ServicesDep) -> Response:
    """Is a dataset version safe to fine-tune on, and if not, what blocks it."""
    return render(request, "engineer_preflight.html.j2", title=f"Preflight of {dataset}",
                  preflight=queries.preflight(svc.graph(), dataset))


def build_router() -> APIRouter:
    router = APIRouter(prefix="/console/engineer", route_class=ConsoleRoute)
    router.add_api_route("", start, methods=["GET"], **ENGINEER)
    router.add_api_route("/blast-radius", blast_radius, methods=["POST"], **ENGINEER)
    router.add_api_route("/datasets/{dataset}/preflight", preflight, methods=["GET"], **ENGINEER)
    return router
