"""The erasure engine: identity → scope → sweep → blast radius → probe → remedy → probe → sweep → statistics
→ erase → attest → report.

Every step's result goes to the request's run folder (erasure.run_folder) and a rerun skips the steps
already there, so a request resumes where it stopped. Remedies are shared by the requests of a run that
reach the same served adapter (erasure.remedy_runs); the sweeps and the run's false-alarm control are in
erasure.checks; filing, the identity and the scope in erasure.filing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from erasure.checks import statistics_step, sweep_after_step, sweep_before_step
from erasure.errors import ReviewPendingError
from erasure.filing import file_and_scope, resolve_request, review_scope, subject_record_status
from erasure.remedy_lineage import path_of
from erasure.remedy_runs import EngineOptions, person_of, probe_before, remedy_all
from erasure.requests import FiledRequest, RequestState, list_requests, load_request, request_dir, save_request
from erasure.run_folder import STEPS, RunSteps, save_step, step_results
from erasure.run_folder.results import ScopeResult, ServedAdapter
from erasure.context import ErasureContext
from lineage.local_files import write_private_text
from lineage.models import Edge
from lineage.store import queries
from lineage.store.writers import LineageWriter

__all__ = ["STEPS", "EngineOptions", "RequestOutcome", "file_and_scope", "review_scope", "run_requests",
           "step_results"]

log = logging.getLogger(__name__)
DEFAULT_ALPHA = 0.01  # the run's family-wise false-alarm rate when no probe report says otherwise


@dataclass
class RequestOutcome:
    """Where one request ended: its status, verdict, and the files an auditor wants."""

    request_id: str
    status: str
    verdict: dict | None = None
    bundle: Path | None = None
    report: Path | None = None
    steps_run: list[str] = field(default_factory=list)


def _blast_step(ctx: ErasureContext, request: FiledRequest, scope: ScopeResult) -> None:
    started = datetime.now(timezone.utc)
    radius = queries.blast_radius_of_records(ctx.graph, scope.included_ids())
    merged_sources = {source for source, _ in radius.adapter_merged}
    top = [a.id for a in radius.adapters if a.id not in merged_sources and a.state in (None, "active")]
    rows = ctx.graph.read("MATCH (a:Adapter) WHERE a.id IN $ids OPTIONAL MATCH (a)-[:DEPLOYED_TO]->(d:Deployment) "
                          "RETURN a.id AS id, a.uri AS uri, a.sha256 AS sha, collect(DISTINCT d.form) AS forms",
                          ids=top)
    served = [{"id": r["id"], "uri": r["uri"], "sha256": r["sha"], "forms": sorted(f for f in r["forms"] if f)}
              for r in sorted(rows, key=lambda r: r["id"])]
    result = {**radius.model_dump(mode="json"), "served_adapters": served,
              "training": subject_record_status(ctx.graph, scope)}
    save_step(ctx.state_dir, request.id, "blast_radius", started, result)
    LineageWriter(ctx.graph).edges("AFFECTS", [Edge(source=request.id, target=a["id"]) for a in served])


def _erase_records(ctx: ErasureContext, request: FiledRequest, record_ids: list[str]) -> None:
    """Tombstone the scope records, delete their text (securely), the cached embeddings, and batch lines."""
    from erasure.scope import drop_index_cache

    started = datetime.now(timezone.utc)
    tombstoned = LineageWriter(ctx.graph).tombstone(record_ids, started)
    content = ctx.open_content()
    deleted = content.delete_many(record_ids)
    content.close()
    indexes = drop_index_cache(ctx.index_dir)
    lines = _drop_batch_lines(ctx.record_batches_dir, set(record_ids))
    save_step(ctx.state_dir, request.id, "erase_records", started,
              {"records": len(record_ids), "tombstoned_now": len(tombstoned), "texts_deleted": deleted,
               "index_caches_dropped": indexes, "batch_lines_removed": lines})


def _drop_batch_lines(folder: Path, ids: set[str]) -> dict[str, int]:
    """Rewrite Lethe's own JSONL batch files without the erased records' lines; lines removed per file."""
    removed = {}
    if not folder.is_dir():
        return removed
    for path in sorted(folder.glob("*.jsonl")):
        kept, dropped = [], 0
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            try:
                rid = json.loads(line).get("id") if line.strip() else None
            except ValueError:
                rid = None
            if rid in ids:
                dropped += 1
            else:
                kept.append(line)
        if dropped:
            write_private_text(path, "".join(kept))
            removed[path.name] = dropped
    return removed


def _select(state: Path, request_ids: Sequence[str] | None) -> list[FiledRequest]:
    if request_ids is None:
        return [r for r in list_requests(state) if r.status in (RequestState.OPEN, RequestState.IN_PROGRESS)]
    return [load_request(state, rid) for rid in dict.fromkeys(request_ids)]


def _outcome(state: Path, request: FiledRequest, steps: RunSteps, steps_run: list[str]) -> RequestOutcome:
    folder = request_dir(state, request.id)
    verdict = steps.attest.verdict.model_dump() if "attest" in steps else None
    return RequestOutcome(request.id, request.status.value, verdict, folder / "attestation.bundle.json",
                          folder / "report.html", steps_run)


def _prepare(ctx: ErasureContext, requests: list[FiledRequest],
             outcomes: dict[str, RequestOutcome]) -> list[FiledRequest]:
    """The requests to run: finished ones are reported as they are; the others get a scope and start."""
    state, active = ctx.state_dir, []
    for request in requests:
        if request.status is RequestState.AWAITING_REVIEW:
            raise ReviewPendingError(f"request {request.id} waits for a review of its scope: `lethe erase status "
                                     f"{request.id}` lists it; `lethe erase review {request.id} --include ID "
                                     "--exclude ID` decides")
        done = step_results(state, request.id)
        if request.status in (RequestState.CLOSED, RequestState.INCOMPLETE, RequestState.REJECTED) \
                and "report" in done:
            outcomes[request.id] = _outcome(state, request, done, [])
            continue
        if "scope" not in done or "identity" not in done:
            resolve_request(ctx, request, {})
        request.status = RequestState.IN_PROGRESS
        save_request(state, ctx.graph, request)
        active.append(request)
    return active


def _run_step(ctx: ErasureContext, request: FiledRequest, name: str, outcome: RequestOutcome, say, what: str,
              run: Callable[[], None]) -> None:
    """Run one step unless the run folder has it already."""
    if name not in step_results(ctx.state_dir, request.id):
        say(request.id, what)
        run()
        outcome.steps_run.append(name)


def _locate(ctx: ErasureContext, request: FiledRequest, outcome: RequestOutcome, say) -> None:
    """The sweep for the person before the remedy, and the blast radius."""
    _run_step(ctx, request, "sweep_before", outcome, say, "sweeping for the person before the remedy",
              lambda: sweep_before_step(ctx, request))
    _run_step(ctx, request, "blast_radius", outcome, say, "blast radius",
              lambda: _blast_step(ctx, request, step_results(ctx.state_dir, request.id).scope))


def _generate_together(ctx: ErasureContext, requests: Sequence[FiledRequest], probe_config,
                       say) -> dict[str, float]:
    """Before the requests' own probes: every served adapter's generations for all the requests that reach
    it and have not been probed, in shared batches (erasure.generation_prefetch); the probes find them.
    Returns request id -> its share of the batches' seconds."""
    from erasure.generation_prefetch import prefetch_generations

    people: dict[str, dict] = {}
    adapters: dict[str, ServedAdapter] = {}
    for request in requests:
        steps = step_results(ctx.state_dir, request.id)
        if "probe_before" in steps:
            continue
        for adapter in steps.blast_radius.served_adapters:
            people.setdefault(adapter.id, {})[request.id] = person_of(request, steps)
            adapters[adapter.id] = adapter
    shares: dict[str, float] = {}
    for adapter_id, group in sorted(people.items()):
        if len(group) > 1:
            say(",".join(sorted(group)), f"generating the {len(group)} requests' prompts on {adapter_id} together")
            started = time.perf_counter()
            prefetch_generations(ctx, path_of(adapters[adapter_id].uri), group, adapters[adapter_id].forms,
                                 probe_config)
            share = (time.perf_counter() - started) / len(group)
            for request_id in group:
                shares[request_id] = shares.get(request_id, 0.0) + share
    return shares


def _probe_before(ctx: ErasureContext, request: FiledRequest, outcome: RequestOutcome, probe_config,
                  shared_seconds: float, say) -> None:
    def probe() -> None:
        steps = step_results(ctx.state_dir, request.id)
        probe_before(ctx, request, steps.scope.included_ids(), steps.blast_radius.served_adapters, probe_config,
                     shared_seconds)

    _run_step(ctx, request, "probe_before", outcome, say, "probing the served adapters (before)", probe)


def _alpha(ctx: ErasureContext, requests: Sequence[FiledRequest]) -> float:
    """The probes' alpha (the run's family-wise rate), from the first probe report that has one."""
    for request in requests:
        steps = step_results(ctx.state_dir, request.id)
        for report in steps.probe_before.adapters.values() if "probe_before" in steps else ():
            return float(report.config.alpha)
    return DEFAULT_ALPHA


def _finish(ctx: ErasureContext, request: FiledRequest, outcome: RequestOutcome, say) -> None:
    """Erase the scope's records, attest, set the status, and write the report."""
    from erasure.attesting import attest
    from erasure.reporting import build_report, write_register

    state = ctx.state_dir
    own = step_results(state, request.id).scope.included_ids()
    _run_step(ctx, request, "erase_records", outcome, say, "erasing the records (tombstones, texts, embeddings)",
              lambda: _erase_records(ctx, request, own))
    _run_step(ctx, request, "attest", outcome, say, "signing and logging the attestation",
              lambda: save_step(state, request.id, "attest", datetime.now(timezone.utc),
                                attest(state, ctx.graph, request, step_results(state, request.id))))
    verdict = step_results(state, request.id).attest.verdict
    request.status = RequestState.CLOSED if verdict.status == "erased" else RequestState.INCOMPLETE
    save_request(state, ctx.graph, request)

    def report() -> None:
        started = datetime.now(timezone.utc)
        html = build_report(state, request.id).html
        write_register(state)
        save_step(state, request.id, "report", started, {"html": html.name})

    _run_step(ctx, request, "report", outcome, say, "writing the report", report)
    outcome.status, outcome.verdict = request.status.value, verdict.model_dump()
    outcome.bundle = request_dir(state, request.id) / "attestation.bundle.json"
    outcome.report = request_dir(state, request.id) / "report.html"


def run_requests(ctx: ErasureContext, request_ids: Sequence[str] | None = None,
                 options: EngineOptions | None = None, *, on_event: Callable[[str, str], None] | None = None,
                 on_step: Callable[[int, int, float], None] | None = None) -> list[RequestOutcome]:
    """Run (or resume) requests to the end; all open ones when `request_ids` is None."""
    from erasure.keyring import Keyring

    options = options or EngineOptions()
    state = ctx.state_dir
    Keyring.open(state)  # created before any step it will attest, so its key is valid for all of them
    say = on_event or (lambda request_id, message: None)
    requests = _select(state, request_ids)
    outcomes = {r.id: RequestOutcome(r.id, r.status.value) for r in requests}
    active = _prepare(ctx, requests, outcomes)
    for request in active:
        _locate(ctx, request, outcomes[request.id], say)
    probe_config = options.probe_config()
    shared = _generate_together(ctx, active, probe_config, say)
    for request in active:
        _probe_before(ctx, request, outcomes[request.id], probe_config, shared.get(request.id, 0.0), say)
    pending = [r for r in active if "remedy" not in step_results(state, r.id)]
    family = sum(len(step_results(state, r.id).scope.included_ids()) for r in pending)
    remedy_all(ctx, pending, options, say, on_step, family)
    for request in pending:
        outcomes[request.id].steps_run += ["remedy", "probe_after"]
    for request in active:
        _run_step(ctx, request, "sweep_after", outcomes[request.id], say, "sweeping for what is left",
                  lambda request=request: sweep_after_step(ctx, request))
    judged = [r for r in active if "statistics" not in step_results(state, r.id)]
    if judged:
        say(",".join(r.id for r in judged), "false-alarm control across the run")
        statistics_step(ctx, judged, _alpha(ctx, judged))
        for request in judged:
            outcomes[request.id].steps_run.append("statistics")
    for request in active:
        _finish(ctx, request, outcomes[request.id], say)
    return [outcomes[r.id] for r in requests]
