"""Filing a request: key the identifiers, resolve the person's identity, resolve the scope, and review it.

The identity and the scope are resolved while the filed identifiers are in memory; the identifiers the
identity adds are read back from the person's own records (erasure.identity). A request filed without
its identifiers in memory (by the API before a run, or an older one) is resolved from its keys: the
plain values come from the records the keys own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from attestation.identifier_guard import identifier_kind
from erasure.errors import ErasureError, InvalidRequestError
from erasure.identity import Decision, IdentityResult, recover_values, resolve_identity
from erasure.requests import (ErasureIntake, FiledRequest, RequestState, file_request, load_request, request_id_for,
                              request_lock, save_request)
from erasure.run_folder import save_step, step_results
from erasure.run_folder.results import ScopeResult, ScopeReview
from erasure.context import ErasureContext
from lineage.models import Edge
from lineage.store import GraphStore, queries
from lineage.store.writers import LineageWriter

__all__ = ["file_and_scope", "link_scope", "resolve_request", "review_scope"]


def file_and_scope(ctx: ErasureContext, intake: ErasureIntake, *, review: bool = False,
                   expand: bool = True, hops: int = 1, now: datetime | None = None) -> tuple[FiledRequest, bool]:
    """File a request and resolve its identity and scope while the raw identifiers are in memory (idempotent).
    Under the request's lock: of many callers filing one idempotency key at once, exactly one creates the
    request and resolves it; the others wait, then get it (the same body) or a conflict naming what differs."""
    keyer = ctx.keyer
    intake.identifiers.keys(keyer)  # a malformed identifier is refused before anything is written
    with request_lock(ctx.state_dir, request_id_for(keyer, intake.idempotency_key)):
        request, new = file_request(ctx.state_dir, ctx.graph, keyer, intake, review=review, now=now)
        if "scope" not in step_results(ctx.state_dir, request.id):
            resolve_request(ctx, request, intake.identifiers.raw(), expand=expand, hops=hops)
        return load_request(ctx.state_dir, request.id), new


def resolve_request(ctx: ErasureContext, request: FiledRequest, given: Mapping[str, str], *,
                    expand: bool = True, hops: int = 1) -> None:
    """The identity and scope steps of a filed request; `given`: kind -> raw value (memory only; may be empty)."""
    from erasure.scope import resolve_scope

    keyer, content = ctx.keyer, ctx.open_content()
    steps = step_results(ctx.state_dir, request.id)
    started = datetime.now(timezone.utc)
    if "identity" in steps:
        identity = steps.identity.model_copy(deep=True)
    else:
        identity = resolve_identity(ctx.graph, {key: kind for kind, key in request.subject_keys.items()},
                                    expand=expand, hops=hops)
    values = {request.subject_keys[kind]: value for kind, value in given.items() if kind in request.subject_keys}
    wanted = {key: kind for key, kind in identity.keys().items() if key not in values}
    recovered = recover_values(content, ctx.record_batches_dir, keyer, wanted, identity.records)
    values.update({key: value for key, (value, _) in recovered.items()})
    for ident in identity.identifiers:
        if ident.value_source is None or ident.hop > 0:
            ident.value_source = recovered[ident.key][1] if ident.key in recovered else \
                ("given" if ident.key in values else None)
    if "identity" not in steps:
        if not given:
            identity.notes.append("resolved without the filed identifiers in memory: the plain values were read "
                                  "back from the records their keys own")
        save_step(ctx.state_dir, request.id, "identity", started, identity.model_dump(mode="json"))
    if "scope" in steps:
        return
    started = datetime.now(timezone.utc)
    scope = resolve_scope(ctx.graph, content, identity, values, keyer, index_dir=ctx.index_dir)
    content.close()
    result = ScopeResult.model_validate(scope.as_json())
    save_step(ctx.state_dir, request.id, "scope", started, result)
    link_scope(ctx.graph, request.id, result)
    expanded = any(i.decision in (Decision.FOLLOWED, Decision.SHARED) for i in identity.identifiers)
    if request.review and (scope.borderline or expanded):
        request.status = RequestState.AWAITING_REVIEW
        save_request(ctx.state_dir, ctx.graph, request)


def link_scope(graph: GraphStore, request_id: str, scope: ScopeResult) -> None:
    """SCOPES edges from the request to exactly the records in scope (a reviewer's exclusion removes one)."""
    ids = scope.included_ids()
    edges = [Edge(source=request_id, target=r.id, props={"reasons": ",".join(r.reasons), "decision": r.decision})
             for r in scope.records if r.included]
    LineageWriter(graph).edges("SCOPES", edges)
    graph.execute("MATCH (:ErasureRequest {id: $id})-[s:SCOPES]->(r:Record) WHERE NOT r.id IN $ids DELETE s",
                  id=request_id, ids=ids)


def _drop_identifiers(identity: IdentityResult, specs: Sequence[str]) -> set[str]:
    """Mark followed identifiers dropped by a reviewer ('account', or a key prefix); their keys."""
    dropped = set()
    for spec in specs:
        wanted = spec.removeprefix("hmac:").rstrip("…")
        hits = [i for i in identity.identifiers if i.decision is Decision.FOLLOWED
                and (i.kind == spec or (len(wanted) >= 8 and i.key.startswith(wanted)))]
        if len(hits) != 1:
            raise InvalidRequestError(f"--drop-identifier {spec!r} names {len(hits)} followed identifiers; name exactly one, "
                             "by kind or by its key's first 8+ characters (`lethe erase status` lists them)")
        hits[0].decision = Decision.DROPPED
        dropped.add(hits[0].key)
    return dropped


def _review_reason(reason: str | None) -> str | None:
    """The reviewer's reason, stripped; refused when it holds what looks like an email address or phone number
    (the run folder, the report and the attestation's inputs keep it)."""
    if reason is None or not reason.strip():
        return None
    kind = identifier_kind(reason)
    if kind is not None:
        raise InvalidRequestError(f"the reason holds what looks like an {kind}; say why without the person's "
                                  "identifiers (the scope and the report keep the reason)")
    return reason.strip()


def review_scope(ctx: ErasureContext, request_id: str, include: Sequence[str],
                 exclude: Sequence[str], drop_identifiers: Sequence[str] = (), *, reason: str | None = None) -> dict:
    """Record a person's decisions: records in or out of scope, identifiers the expansion should not follow,
    and (when given) why."""
    reason = _review_reason(reason)
    request = load_request(ctx.state_dir, request_id)
    steps = step_results(ctx.state_dir, request_id)
    if "scope" not in steps:
        raise ErasureError(f"request {request_id} has no scope yet; file it first")
    if "remedy" in steps:
        raise ErasureError(f"request {request_id} was already remedied; its scope can no longer change")
    both = set(include) & set(exclude)
    if both:
        raise InvalidRequestError(f"records both included and excluded: {sorted(both)}")
    scope = steps.scope.model_copy(deep=True)
    records = {r.id: r for r in scope.records}
    unknown = [rid for rid in [*include, *exclude] if rid not in records or "owned" in records[rid].reasons]
    if unknown:
        raise InvalidRequestError(f"not reviewable records of this request's scope: {unknown}; review the records "
                         f"`lethe erase status {request_id}` lists that the subject does not own")
    identity = steps.identity.model_copy(deep=True) if "identity" in steps else None
    dropped = _drop_identifiers(identity, drop_identifiers) if identity is not None and drop_identifiers else set()
    for record in records.values():
        via = set(record.via_keys)
        if dropped and via and via <= dropped and record.included:
            record.decision = "excluded_reviewed"
    for rid in include:
        records[rid].decision = "included_reviewed"
    for rid in exclude:
        records[rid].decision = "excluded_reviewed"
    if dropped:
        identity.records = [rid for rid in identity.records if rid in records and records[rid].included]
        save_step(ctx.state_dir, request_id, "identity", steps.file("identity").started_at, identity)
    if reason is not None:
        scope.reviews.append(ScopeReview(at=datetime.now(timezone.utc), included=list(include),
                                         excluded=list(exclude), dropped_identifiers=len(dropped), reason=reason))
    save_step(ctx.state_dir, request_id, "scope", steps.file("scope").started_at, scope)
    link_scope(ctx.graph, request_id, scope)
    left = [r.id for r in records.values() if r.decision == "excluded_borderline"]
    if not left and request.status is RequestState.AWAITING_REVIEW:
        request.status = RequestState.OPEN
        save_request(ctx.state_dir, ctx.graph, request)
    return {"included": list(include), "excluded": list(exclude), "still_borderline": left,
            "dropped_identifiers": len(dropped)}


def subject_record_status(graph: GraphStore, scope: ScopeResult) -> dict:
    """Whether the person's own records ever reached a fine-tune run, and the adapters that trained on records
    naming them (for `never trained` requests, said plainly in the report and the attestation)."""
    owned = [r.id for r in scope.records if r.included and "owned" in r.reasons]
    others = [r.id for r in scope.records if r.included and "owned" not in r.reasons]
    status = queries.training_status(graph, owned)
    trained = sum(1 for s in status.values() if s == "trained")
    held_out = sum(1 for s in status.values() if s == "held_out")
    radius = queries.blast_radius_of_records(graph, others) if others else None
    return {"subject_records": len(owned), "trained": trained, "held_out": held_out,
            "not_in_any_run": len(owned) - trained - held_out, "never_trained": trained == 0,
            "adapters_trained_on_mentions": sorted({a.id for a in radius.adapters}) if radius else []}
