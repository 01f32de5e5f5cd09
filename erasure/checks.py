"""The checks around a remedy: the residual sweeps (before and after) and the run's false-alarm control.

`sweep_before` runs first in a request's run: what it finds outside the scope joins the scope (unless a
reviewer excluded it), so the same run remedies it. `sweep_after` runs once the remedy stands and before
the scope's records are deleted: what it finds is residue and turns the verdict. `statistics` judges the
probes of every request of the run as one family (Holm), and looks for the cause of any record that still
flags after an exact remedy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from erasure.filing import link_scope
from erasure.requests import FiledRequest
from erasure.run_folder import RunSteps, save_step, step_results
from erasure.run_folder.results import ProbeReport, Remedy, ScopeResult, ScopeRow
from erasure.context import ErasureContext
from erasure.statistics import (METHOD, FamilyRecord, StatisticsResult, adapter_of, adjust_family,
                                copies_in_training, family_tests, form_key, near_verbatim)
from erasure.sweep import SweepResult, sweep, sweep_needles
from lineage.store import GraphStore, queries

__all__ = ["statistics_step", "sweep_after_step", "sweep_before_step"]


def _held(graph: GraphStore) -> dict[str, str]:
    rows = graph.read("MATCH (r:Record) WHERE coalesce(r.state, 'active') <> 'erased' RETURN r.id AS id")
    return {row["id"]: "" for row in rows}


def _scope_sets(scope: ScopeResult) -> tuple[set[str], set[str]]:
    """(records in scope, records a reviewer excluded)."""
    return set(scope.included_ids()), {r.id for r in scope.records if r.decision == "excluded_reviewed"}


def _sweep(ctx: ErasureContext, steps: RunSteps, phase: str, training=None) -> SweepResult:
    identity = steps.identity
    content, keyer = ctx.open_content(), ctx.keyer
    held = _held(ctx.graph)
    corpus = content.get_many(sorted(held))
    needles = sweep_needles(ctx.graph, content, ctx.record_batches_dir, keyer, identity, corpus)
    in_scope, excluded = _scope_sets(steps.scope)
    result = sweep(phase, needles, content, ctx.record_batches_dir, scope=in_scope, excluded=excluded,
                   held=held, training=training)
    content.close()
    return result


def sweep_before_step(ctx: ErasureContext, request: FiledRequest) -> None:
    """Sweep before the remedy; a hit outside the scope joins it (reason `swept`) — unless the request's
    blast radius was taken already (a run folder from before this step existed): then hits are residue."""
    started = datetime.now(timezone.utc)
    steps = step_results(ctx.state_dir, request.id)
    result = _sweep(ctx, steps, "before")
    if "blast_radius" in steps:
        result.notes.append("the request was resumed past its blast radius: hits could not join the scope")
        for hit in result.hits:
            if hit.disposition == "joined_scope":
                hit.disposition = "residue"
    if any(h.disposition == "joined_scope" for h in result.hits):
        scope = _join_scope(ctx, steps.scope, result)
        save_step(ctx.state_dir, request.id, "scope", steps.file("scope").started_at, scope)
        link_scope(ctx.graph, request.id, scope)
    save_step(ctx.state_dir, request.id, "sweep_before", started, result.model_dump(mode="json"))


def _join_scope(ctx: ErasureContext, scope: ScopeResult, sweep_result: SweepResult) -> ScopeResult:
    """The scope with the sweep's hits joined (reason `swept`), in scope first, then by id."""
    joined = [h for h in sweep_result.hits if h.disposition == "joined_scope"]
    held = {row["id"]: row["sha"] for row in ctx.graph.read(
        "UNWIND $ids AS id MATCH (r:Record {id: id}) RETURN r.id AS id, r.content_sha256 AS sha",
        ids=[h.record_id for h in joined])}
    records = {r.id: r.model_copy() for r in scope.records}
    for hit in joined:
        record = records.setdefault(hit.record_id, ScopeRow(id=hit.record_id, content_sha256=held[hit.record_id],
                                                           reasons=[], decision="included"))
        record.reasons = sorted({*record.reasons, "swept"})
        record.identifiers = sorted({*record.identifiers, *hit.kinds})
        record.decision = "included"
    ordered = sorted(records.values(), key=lambda r: (not r.included, r.id))
    return scope.model_copy(update={"records": ordered})


def training_ids(graph: GraphStore, remedies: Sequence[Remedy], scope: set[str]) -> set[str]:
    """What the adapters standing after the remedies trained on: the derived version's shards after an exact
    remedy; after an approximate one, the old version's records (less the scope it unlearned)."""
    ids: set[str] = set()
    for remedy in remedies:
        version = remedy.new_dataset_version if remedy.kind == "exact" else remedy.old_manifest.dataset_version
        plan = queries.dataset_plan(graph, version)
        ids.update(rid for shard in plan.shards for rid, _ in shard.records)
    return ids - scope


def sweep_after_step(ctx: ErasureContext, request: FiledRequest) -> None:
    """Sweep after the remedy: every hit outside the scope is residue (the verdict names it)."""
    started = datetime.now(timezone.utc)
    steps = step_results(ctx.state_dir, request.id)
    in_scope, _ = _scope_sets(steps.scope)
    training = training_ids(ctx.graph, steps.remedy.remedies, in_scope)
    result = _sweep(ctx, steps, "after", training)
    save_step(ctx.state_dir, request.id, "sweep_after", started, result.model_dump(mode="json"))


def _reports(steps: RunSteps) -> list[tuple[str, str, ProbeReport, set[str]]]:
    in_scope, _ = _scope_sets(steps.scope)
    out = []
    for phase, probes in (("before", steps.probe_before), ("after", steps.probe_after)):
        for adapter, report in probes.adapters.items():
            for form, form_report in report.variants().items():  # each served form: tests of its own
                out.append((phase, form_key(adapter, form), form_report, in_scope))
    return out


def statistics_step(ctx: ErasureContext, requests: Sequence[FiledRequest], alpha: float) -> None:
    """Holm over every request's records in this run; causes of the flags left after exact remedies."""
    started = datetime.now(timezone.utc)
    steps = {r.id: step_results(ctx.state_dir, r.id) for r in requests}
    tests = family_tests(t for r in requests for t in _reports(steps[r.id]))
    adjusted = adjust_family(tests, alpha)
    causes = _causes(ctx, requests, steps, adjusted)
    run = sorted(r.id for r in requests)
    for request in requests:
        own = [(key, p) for key, p in tests.items()
               if any(key[:2] == (phase, adapter) and key[2] in records
                      for phase, adapter, _, records in _reports(steps[request.id]))]
        records = [FamilyRecord(phase=phase, adapter=adapter, record_id=rid, p_value=p,
                                p_adjusted=adjusted[(phase, adapter, rid)][0],
                                flagged=adjusted[(phase, adapter, rid)][1],
                                cause=causes.get(request.id, {}).get(rid) if phase == "after" else None)
                   for (phase, adapter, rid), p in sorted(own)]
        result = StatisticsResult(method=METHOD, alpha=alpha, run_requests=run,
                                  tests_before=sum(1 for k in tests if k[0] == "before"),
                                  tests_after=sum(1 for k in tests if k[0] == "after"),
                                  flags_before=sum(1 for k, (_, f) in adjusted.items() if f and k[0] == "before"),
                                  flags_after=sum(1 for k, (_, f) in adjusted.items() if f and k[0] == "after"),
                                  records=records)
        save_step(ctx.state_dir, request.id, "statistics", started, result.model_dump(mode="json"))


def _causes(ctx: ErasureContext, requests: Sequence[FiledRequest], steps: Mapping[str, RunSteps],
            adjusted: Mapping) -> dict[str, dict[str, str]]:
    """Request id -> {flagged record -> why it is not chance}, for the records flagged after a remedy."""
    out: dict[str, dict[str, str]] = {}
    for request in requests:
        remedies = steps[request.id].remedy.remedies
        kinds = {r.new_adapter: r.kind for r in remedies}
        flagged = {key[2] for key, (_, f) in adjusted.items()
                   if f and key[0] == "after" and adapter_of(key[1]) in kinds}
        in_scope, _ = _scope_sets(steps[request.id].scope)
        flagged &= in_scope
        if not flagged:
            continue
        causes = {}
        approximate = {key[2] for key, (_, f) in adjusted.items()
                       if f and key[0] == "after" and kinds.get(adapter_of(key[1])) == "approximate"}
        for rid in flagged & approximate:
            causes[rid] = "still looks memorized after an approximate method (no exact retrain)"
        residue = [h for h in steps[request.id].sweep_after.hits if "training" in h.places]
        for rid in flagged - set(causes):
            if residue:
                causes[rid] = (f"the new training set still holds the subject's {', '.join(residue[0].kinds)} "
                               f"(record {residue[0].record_id})")
        rest = flagged - set(causes)
        if rest:
            training = training_ids(ctx.graph, remedies, in_scope)
            causes.update(_copies(ctx, rest, training, in_scope, set(steps[request.id].identity.keys())))
        out[request.id] = causes
    return out


def _copies(ctx: ErasureContext, flagged: set[str], training: set[str],
            scope: set[str], identity_keys: set[str]) -> dict[str, str]:
    """Near-duplicates of flagged records in the training set, confirmed as the scope confirms them."""
    from erasure.identity import other_peoples_spans
    from erasure.scope import NEAR_VERBATIM_RATIO, load_record_index
    from lineage.pii.rare_spans import SpanFrequencies, confirms
    from unlearning.search import MiniLMEmbedder, find_near_duplicates
    from unlearning.search.near_duplicates import PARAPHRASE_THRESHOLD

    content, keyer = ctx.open_content(), ctx.keyer
    held = {row["id"]: row["sha"] for row in ctx.graph.read(
        "MATCH (r:Record) WHERE coalesce(r.state, 'active') <> 'erased' RETURN r.id AS id, r.content_sha256 AS sha")}
    texts = content.get_many(sorted(held))
    content.close()
    queries_ = [rid for rid in sorted(flagged) if rid in texts]
    embedder = MiniLMEmbedder()
    index = load_record_index(embedder, texts, held, ctx.index_dir)
    frequencies = SpanFrequencies(texts)
    outside = frequencies.outside(scope)

    def search(_flagged):
        matches = find_near_duplicates(index, queries_, embedder.encode([texts[r] for r in queries_]),
                                       threshold=PARAPHRASE_THRESHOLD, exclude=scope)
        return [(m.query_id, m.match_id, m.cosine) for m in matches]

    def confirm(rid: str, match: str) -> str | None:
        if near_verbatim(texts[rid], texts[match]) >= NEAR_VERBATIM_RATIO:
            return "near-verbatim"
        foreign = other_peoples_spans(ctx.graph, keyer, [texts[rid], texts[match]], identity_keys)
        shared = frequencies.shared_rare(match, [rid], outside, foreign)
        return "shares " + ", ".join(sorted(shared)) if confirms(shared) else None

    return copies_in_training({r: texts[r] for r in queries_}, {t: "" for t in training}, search, confirm)
