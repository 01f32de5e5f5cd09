"""The engineer's routes: blast radius (identifiers in the body, never the URL) and preflight."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

import lethe.api.responses as responses
from lethe.api.auth import Role
from lethe.api.guard import GuardedRoute, only
from lethe.api.schemas import BlastRadiusQuery
from lethe.api.services import Services, ServicesDep
from lineage.impact import BlastRadius, Preflight
from lineage.store import queries

DatasetId = Annotated[str, Path(min_length=1, max_length=500, description="a dataset version id (name:hash)")]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["engineer"], route_class=GuardedRoute, responses={
        **responses.AUTH, **responses.INVALID, **responses.UNAVAILABLE, **responses.NO_DATASET})

    @router.post("/blast-radius", response_model=BlastRadius, responses=responses.BAD_BODY,
                 **only(Role.ENGINEER))
    def blast_radius(query: BlastRadiusQuery, svc: ServicesDep) -> BlastRadius:
        """Which datasets, runs, adapters and deployments learned from a subject, records or a dataset."""
        return blast_radius_for(svc, query)

    @router.get("/preflight/{dataset}", response_model=Preflight, **only(Role.ENGINEER))
    def preflight(dataset: DatasetId, svc: ServicesDep) -> Preflight:
        """Is a dataset version safe to fine-tune on? `ok` is false when it holds erased or requested data."""
        result = queries.preflight(svc.graph(), dataset)
        return result

    return router


def blast_radius_for(svc: Services, query: BlastRadiusQuery) -> BlastRadius:
    """The blast radius the API and the console answer: from a subject (keyed first: a bad identifier is a
    validation error before Neo4j is asked), from records, or from a dataset version."""
    if query.subject is not None or query.subject_key is not None:
        keys = [query.subject_key] if query.subject_key else []
        if query.subject is not None:
            keys += svc.subject_keys(query.subject, ("body", "subject")).values()
        return queries.blast_radius_of_subject(svc.graph(), keys, query.depth)
    if query.records is not None:
        return queries.blast_radius_of_records(svc.graph(), query.records, query.depth)
    return queries.blast_radius_of_dataset(svc.graph(), query.dataset, query.depth)
