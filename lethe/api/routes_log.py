"""The auditor's view of the transparency log: the latest signed checkpoint, consistency, inclusion."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from attestation.checkpoint import parse_checkpoint
from attestation.encoding import b64encode
from attestation.transparency_log import TransparencyLog
import lethe.api.responses as responses
from lethe.api.auth import Role
from lethe.api.guard import GuardedRoute, only
from lethe.api.schemas import CheckpointOut, ConsistencyOut, InclusionOut
from lethe.api.services import Services, ServicesDep
from erasure.keyring import KeyringPaths

OldSize = Annotated[int, Query(ge=0, description="the tree size the auditor last saw")]
Index = Annotated[int, Path(ge=0, description="the entry's index in the log")]
TreeSize = Annotated[int | None, Query(ge=1, description="default: the latest checkpoint's size")]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/log", tags=["auditor"], route_class=GuardedRoute,
                       responses={**responses.AUTH, **responses.NOT_YET})
    proof_errors = {**responses.BAD_SIZE, **responses.INVALID}

    @router.get("/checkpoint", response_model=CheckpointOut, **only(Role.AUDITOR))
    def latest_checkpoint(svc: ServicesDep) -> CheckpointOut:
        """The transparency log's latest signed checkpoint."""
        return CheckpointOut(checkpoint=latest_checkpoint_of(open_log(svc))[0])

    @router.get("/consistency", response_model=ConsistencyOut, responses=proof_errors, **only(Role.AUDITOR))
    def consistency(old_size: OldSize, svc: ServicesDep) -> ConsistencyOut:
        """Proof that the log at `old_size` is a prefix of the log under the latest checkpoint."""
        log = open_log(svc)
        note, size = latest_checkpoint_of(log)
        proof = [b64encode(h) for h in log.consistency_proof(old_size, size)]
        return ConsistencyOut(checkpoint=note, old_size=old_size, tree_size=size, proof=proof)

    @router.get("/entries/{index}/inclusion", response_model=InclusionOut, responses=proof_errors,
                **only(Role.AUDITOR))
    def inclusion(index: Index, svc: ServicesDep, tree_size: TreeSize = None) -> InclusionOut:
        """The audit path of entry `index` in the tree of `tree_size` entries."""
        log = open_log(svc)
        size = tree_size if tree_size is not None else latest_checkpoint_of(log)[1]
        proof = [b64encode(h) for h in log.inclusion_proof(index, size)]
        return InclusionOut(index=index, tree_size=size, proof=proof)

    return router


def open_log(svc: Services) -> TransparencyLog:
    """The transparency log of the state folder; 404 before the first attestation created it."""
    # The log alone, where the keyring keeps it: reading it needs no private key, and never creates one.
    directory = KeyringPaths.under(svc.state_dir).log
    if not (directory / "log.json").is_file():
        raise HTTPException(404, "no transparency log yet: it is created with the keys at the first "
                                 "attestation")
    return TransparencyLog.open(directory)


def latest_checkpoint_of(log: TransparencyLog) -> tuple[str, int]:
    """The latest signed checkpoint note and its tree size; 404 when none is signed yet."""
    note = log.latest_checkpoint()
    if note is None:
        raise HTTPException(404, "the transparency log has no signed checkpoint yet")
    return note, parse_checkpoint(note).checkpoint.size
