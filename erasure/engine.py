"""The erasure engine: scope → blast radius → probe before → remedy → probe after → erase → attest → report.

Every step's result goes to the request's run folder (`steps/<name>.json`, written atomically) and a
rerun skips the steps already there, so a request resumes where it stopped. Remedies are shared:
requests of one run whose scopes reach the same served adapter, received within the coalescing window
of each other, get one remedy (folder `remedies/<id>/`), and each keeps its own attestation. A remedy
writes `pending.json` just before its lineage transaction; a rerun that finds it asks the graph whether
the transaction committed (the new adapter REPLACES the old one under this remedy id) and either
finishes it (delete the old weights) or starts the remedy again — so a `kill -9` at any point leaves
one new adapter, one attestation and a consistent graph.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from erasure import wiring
from erasure.errors import ErasureError, ReviewPendingError
from erasure.remediation import RemedyRecord, delete_weights, path_of, remedy_adapter, replacement_of
from erasure.requests import (ErasureIntake, FiledRequest, RequestState, file_request, load_request,
                              request_dir, save_request, write_json_atomic)
from erasure.settings import Settings
from lineage.models import Edge
from lineage.store import GraphStore, queries
from lineage.store.writers import LineageWriter

__all__ = ["STEPS", "EngineOptions", "RequestOutcome", "file_and_scope", "review_scope", "run_requests",
           "step_results"]

STEPS = ("scope", "blast_radius", "probe_before", "remedy", "probe_after", "erase_records", "attest", "report")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineOptions:
    """How to remedy: method, its settings, escalation, and the coalescing window."""

    method: str = "retrain"
    config: Mapping | None = None
    escalate: bool = True
    coalesce_window: timedelta = timedelta(hours=24)


@dataclass
class RequestOutcome:
    """Where one request ended: its status, verdict, and the files an auditor wants."""

    request_id: str
    status: str
    verdict: dict | None = None
    bundle: Path | None = None
    report: Path | None = None
    steps_run: list[str] = field(default_factory=list)


def _steps_dir(state_dir: Path, request_id: str) -> Path:
    return request_dir(state_dir, request_id) / "steps"


def step_results(state_dir: Path, request_id: str) -> dict[str, dict]:
    """The persisted steps of a request, by name."""
    folder = _steps_dir(state_dir, request_id)
    out = {}
    for name in STEPS:
        path = folder / f"{name}.json"
        if path.is_file():
            out[name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def _save_step(state_dir: Path, request_id: str, name: str, started: datetime, result: dict) -> dict:
    finished = datetime.now(timezone.utc)
    document = {"step": name, "started_at": started.isoformat(), "finished_at": finished.isoformat(),
                "seconds": (finished - started).total_seconds(), "result": result}
    write_json_atomic(_steps_dir(state_dir, request_id) / f"{name}.json", document)
    log.info("request %s: step %s done in %.1f s", request_id, name, document["seconds"])
    return document


def file_and_scope(settings: Settings, graph: GraphStore, intake: ErasureIntake, *, review: bool = False,
                   now: datetime | None = None) -> tuple[FiledRequest, bool]:
    """File a request and resolve its scope while the raw identifiers are in memory (idempotent)."""
    keyer = wiring.subject_keyer(settings)
    request, new = file_request(settings.state_dir, graph, keyer, intake, review=review, now=now)
    if "scope" not in step_results(settings.state_dir, request.id):
        _scope_step(settings, graph, request, intake.identifiers.raw())
    return load_request(settings.state_dir, request.id), new


def _scope_step(settings: Settings, graph: GraphStore, request: FiledRequest, identifiers: Mapping[str, str]) -> None:
    from erasure.scope import resolve_scope

    started = datetime.now(timezone.utc)
    scope = resolve_scope(graph, wiring.content_store(settings), list(request.subject_keys.values()), identifiers,
                          wiring.subject_keyer(settings), index_dir=settings.state_dir / "indexes")
    if not identifiers:
        scope.notes.append("resolved without the raw identifiers (no fresh mention scan): only the graph's "
                           "scan results and near-duplicates were used")
    _save_step(settings.state_dir, request.id, "scope", started, scope.as_json())
    _link_scope(graph, request.id, scope.as_json())
    if request.review and scope.borderline:
        request.status = RequestState.AWAITING_REVIEW
        save_request(settings.state_dir, graph, request)


def _link_scope(graph: GraphStore, request_id: str, scope: dict) -> None:
    edges = [Edge(source=request_id, target=r["id"], props={"reasons": ",".join(r["reasons"]),
                                                            "decision": r["decision"]})
             for r in scope["records"] if r["decision"] in ("included", "included_reviewed")]
    LineageWriter(graph).edges("SCOPES", edges)


def review_scope(settings: Settings, graph: GraphStore, request_id: str, include: Sequence[str],
                 exclude: Sequence[str]) -> dict:
    """Record a person's decisions on borderline near-duplicates; the request runs once none is left."""
    request = load_request(settings.state_dir, request_id)
    steps = step_results(settings.state_dir, request_id)
    if "scope" not in steps:
        raise ErasureError(f"request {request_id} has no scope yet; file it first")
    if "remedy" in steps:
        raise ErasureError(f"request {request_id} was already remedied; its scope can no longer change")
    document = steps["scope"]
    records = {r["id"]: r for r in document["result"]["records"]}
    both = set(include) & set(exclude)
    if both:
        raise ValueError(f"records both included and excluded: {sorted(both)}")
    unknown = [rid for rid in [*include, *exclude] if rid not in records or "near_duplicate" not in records[rid]["reasons"]]
    if unknown:
        raise ValueError(f"not near-duplicates of this request's scope: {unknown}; review only the records "
                         f"`lethe erase status {request_id}` lists as borderline")
    for rid in include:
        records[rid]["decision"] = "included_reviewed"
    for rid in exclude:
        records[rid]["decision"] = "excluded_reviewed"
    write_json_atomic(_steps_dir(settings.state_dir, request_id) / "scope.json", document)
    _link_scope(graph, request_id, document["result"])
    left = [r["id"] for r in records.values() if r["decision"] == "excluded_borderline"]
    if not left and request.status is RequestState.AWAITING_REVIEW:
        request.status = RequestState.OPEN
        save_request(settings.state_dir, graph, request)
    return {"included": list(include), "excluded": list(exclude), "still_borderline": left}


def _blast_step(settings: Settings, graph: GraphStore, request: FiledRequest, scope: dict) -> None:
    from erasure.attesting import scope_hashes

    started = datetime.now(timezone.utc)
    ids = sorted(scope_hashes(scope))
    radius = queries.blast_radius_of_records(graph, ids)
    merged_sources = {source for source, _ in radius.adapter_merged}
    top = [a.id for a in radius.adapters if a.id not in merged_sources and a.state in (None, "active")]
    rows = graph.read("MATCH (a:Adapter) WHERE a.id IN $ids RETURN a.id AS id, a.uri AS uri, a.sha256 AS sha",
                      ids=top)
    served = [{"id": r["id"], "uri": r["uri"], "sha256": r["sha"]} for r in sorted(rows, key=lambda r: r["id"])]
    result = {**radius.model_dump(mode="json"), "served_adapters": served}
    _save_step(settings.state_dir, request.id, "blast_radius", started, result)
    LineageWriter(graph).edges("AFFECTS", [Edge(source=request.id, target=a["id"]) for a in served])


def _remedy_id(old_adapter: str, request_ids: Sequence[str]) -> str:
    return "rm-" + hashlib.sha256(f"{old_adapter}:{','.join(sorted(request_ids))}".encode()).hexdigest()[:16]


def _record_json(record: RemedyRecord, config: dict, request_ids: Sequence[str], old_sha: str) -> dict:
    return {"remedy_id": record.remedy_id, "old_adapter": record.old_adapter, "old_adapter_sha256": old_sha,
            "new_adapter": record.new_adapter, "new_adapter_sha256": record.new_adapter_sha256,
            "new_adapter_path": record.new_adapter_path, "method": (record.attempts[-1]["method"]
                                                                   if record.attempts else record.method),
            "requested_method": record.method, "kind": record.kind, "config": config,
            "escalated": record.escalated, "escalation_reason": record.escalation_reason,
            "attempts": record.attempts, "utility": record.utility, "deleted_weights": record.deleted_weights,
            "new_dataset_version": record.new_dataset_version, "old_manifest": record.old_manifest,
            "coalesced_with": sorted(request_ids), "still_flagged": record.still_flagged,
            "stage_seconds": record.stage_seconds,
            "before": record.before.model_dump(mode="json") if record.before is not None else None,
            "after": record.after.model_dump(mode="json") if record.after is not None else None}


def _run_remedy(settings: Settings, graph: GraphStore, adapter: dict, record_ids: list[str],
                request_ids: list[str], before: dict | None, options: EngineOptions,
                on_step: Callable | None) -> dict:
    """One remedy of one served adapter for the union of the requests' records; resumable."""
    from unlearning.methods.registry import parse_config
    from unlearning.probes import ProbeReport

    remedy_id = _remedy_id(adapter["id"], request_ids)
    folder = settings.state_dir / "remedies" / remedy_id
    final, pending = folder / "record.json", folder / "pending.json"
    if final.is_file():
        return json.loads(final.read_text(encoding="utf-8"))
    if pending.is_file():
        document = json.loads(pending.read_text(encoding="utf-8"))
        if replacement_of(graph, adapter["id"], remedy_id) == document["new_adapter"]:
            # The lineage committed before the crash: finish deleting the old weights.
            old_weights = [(aid, Path(path)) for aid, path in document.pop("old_weights")]
            document["deleted_weights"] = delete_weights(graph, old_weights)
            write_json_atomic(final, document)
            pending.unlink()
            return document
        pending.unlink()  # it never committed: the old adapter is still served; start again
    config = parse_config(options.method, options.config).model_dump(mode="json")

    def persist(record: RemedyRecord, old_weights: list[tuple[str, Path]]) -> None:
        chosen = config if not record.escalated else parse_config("retrain", None).model_dump(mode="json")
        document = _record_json(record, chosen, request_ids, adapter["sha256"])
        document["old_weights"] = [[aid, str(path)] for aid, path in old_weights]
        write_json_atomic(pending, document)

    report = ProbeReport.model_validate(before) if before is not None else None
    record = remedy_adapter(settings, graph, path_of(adapter["uri"]), record_ids, options.method, options.config,
                            escalate=options.escalate, on_step=on_step, before=report, remedy_id=remedy_id,
                            before_commit=persist)
    if record.noop_reason:
        document = {"remedy_id": remedy_id, "old_adapter": adapter["id"], "noop_reason": record.noop_reason,
                    "coalesced_with": sorted(request_ids)}
    else:
        document = json.loads(pending.read_text(encoding="utf-8"))
        document.pop("old_weights")
        document["deleted_weights"] = record.deleted_weights
        document["stage_seconds"] = record.stage_seconds  # now with the lineage write and the deletion
    write_json_atomic(final, document)
    if pending.is_file():
        pending.unlink()
    return document


def _probe_before(settings: Settings, graph: GraphStore, request: FiledRequest, record_ids: list[str],
                  served: list[dict]) -> None:
    started = datetime.now(timezone.utc)
    adapters, noop = {}, []
    for adapter in served:
        record = remedy_adapter(settings, graph, path_of(adapter["uri"]), record_ids, probe_only=True)
        if record.noop_reason:
            noop.append({"adapter": adapter["id"], "reason": record.noop_reason})
        else:
            adapters[adapter["id"]] = record.before.model_dump(mode="json")
    _save_step(settings.state_dir, request.id, "probe_before", started, {"adapters": adapters, "noop": noop})


def _erase_records(settings: Settings, graph: GraphStore, request: FiledRequest, record_ids: list[str]) -> None:
    """Tombstone the scope records, delete their text (securely), the cached embeddings, and batch lines."""
    from erasure.scope import drop_index_cache

    started = datetime.now(timezone.utc)
    tombstoned = LineageWriter(graph).tombstone(record_ids, started)
    content = wiring.content_store(settings)
    deleted = content.delete_many(record_ids)
    content.close()
    indexes = drop_index_cache(settings.state_dir / "indexes")
    lines = _drop_batch_lines(settings.record_batches_dir, set(record_ids))
    _save_step(settings.state_dir, request.id, "erase_records", started,
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
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text("".join(kept), encoding="utf-8")
            tmp.replace(path)
            removed[path.name] = dropped
    return removed


def _report(settings: Settings, request: FiledRequest) -> Path | None:
    from erasure.reporting import build_report, write_register

    paths = build_report(settings.state_dir, request.id)
    write_register(settings.state_dir)
    return paths.html


def run_requests(settings: Settings, graph: GraphStore, request_ids: Sequence[str] | None = None,
                 options: EngineOptions | None = None, *, on_event: Callable[[str, str], None] | None = None,
                 on_step: Callable[[int, int, float], None] | None = None) -> list[RequestOutcome]:
    """Run (or resume) requests to the end; all open ones when `request_ids` is None."""
    from erasure.attesting import attest, scope_hashes
    from erasure.requests import list_requests

    from erasure.keyring import Keyring

    options = options or EngineOptions()
    state = settings.state_dir
    Keyring.open(state)  # created before any step it will attest, so its key is valid for all of them
    say = on_event or (lambda request_id, message: None)
    if request_ids is None:
        requests = [r for r in list_requests(state) if r.status in (RequestState.OPEN, RequestState.IN_PROGRESS)]
    else:
        requests = [load_request(state, rid) for rid in dict.fromkeys(request_ids)]
    outcomes = {r.id: RequestOutcome(r.id, r.status.value) for r in requests}
    active = []
    for request in requests:
        if request.status is RequestState.AWAITING_REVIEW:
            raise ReviewPendingError(f"request {request.id} waits for a review of its borderline near-duplicates: "
                                     f"`lethe erase review {request.id} --include ID --exclude ID`")
        done = step_results(state, request.id)
        if request.status in (RequestState.CLOSED, RequestState.INCOMPLETE, RequestState.REJECTED) \
                and "report" in done:
            folder = request_dir(state, request.id)
            outcomes[request.id] = RequestOutcome(request.id, request.status.value,
                                                  done.get("attest", {}).get("result", {}).get("verdict"),
                                                  folder / "attestation.bundle.json", folder / "report.html")
            continue
        if "scope" not in step_results(state, request.id):
            _scope_step(settings, graph, request, {})
        request.status = RequestState.IN_PROGRESS
        save_request(state, graph, request)
        active.append(request)

    for request in active:
        steps = step_results(state, request.id)
        if "blast_radius" not in steps:
            say(request.id, "blast radius")
            _blast_step(settings, graph, request, steps["scope"]["result"])
            outcomes[request.id].steps_run.append("blast_radius")
        steps = step_results(state, request.id)
        if "probe_before" not in steps:
            say(request.id, "probing the served adapters (before)")
            _probe_before(settings, graph, request, sorted(scope_hashes(steps["scope"]["result"])),
                          steps["blast_radius"]["result"]["served_adapters"])
            outcomes[request.id].steps_run.append("probe_before")

    _remedy_all(settings, graph, [r for r in active if "remedy" not in step_results(state, r.id)], options,
                say, on_step, outcomes)

    for request in active:
        steps = step_results(state, request.id)
        own = sorted(scope_hashes(steps["scope"]["result"]))
        if "erase_records" not in steps:
            say(request.id, "erasing the records (tombstones, texts, cached embeddings)")
            _erase_records(settings, graph, request, own)
            outcomes[request.id].steps_run.append("erase_records")
        steps = step_results(state, request.id)
        if "attest" not in steps:
            say(request.id, "signing and logging the attestation")
            started = datetime.now(timezone.utc)
            _save_step(state, request.id, "attest", started, attest(state, graph, request, steps))
            outcomes[request.id].steps_run.append("attest")
        steps = step_results(state, request.id)
        verdict = steps["attest"]["result"]["verdict"]
        request.status = RequestState.CLOSED if verdict["status"] == "erased" else RequestState.INCOMPLETE
        save_request(state, graph, request)
        if "report" not in steps:
            started = datetime.now(timezone.utc)
            html = _report(settings, request)
            _save_step(state, request.id, "report", started, {"html": html.name if html else None})
            outcomes[request.id].steps_run.append("report")
        folder = request_dir(state, request.id)
        outcomes[request.id] = RequestOutcome(request.id, request.status.value, verdict,
                                              folder / "attestation.bundle.json", folder / "report.html",
                                              outcomes[request.id].steps_run)
    return [outcomes[r.id] for r in requests]


def _remedy_all(settings: Settings, graph: GraphStore, requests: list[FiledRequest], options: EngineOptions,
                say, on_step, outcomes: dict[str, RequestOutcome]) -> None:
    """Group the requests by served adapter (and window), remedy each group once, persist per request."""
    from erasure.attesting import scope_hashes

    state = settings.state_dir
    remedy_started = datetime.now(timezone.utc)
    steps = {r.id: step_results(state, r.id) for r in requests}
    by_adapter: dict[str, list[FiledRequest]] = {}
    adapters: dict[str, dict] = {}
    for request in requests:
        for adapter in steps[request.id]["blast_radius"]["result"]["served_adapters"]:
            by_adapter.setdefault(adapter["id"], []).append(request)
            adapters[adapter["id"]] = adapter
    documents: dict[str, list[dict]] = {r.id: [] for r in requests}
    for adapter_id, group in sorted(by_adapter.items()):
        group = sorted(group, key=lambda r: (r.received_at, r.id))
        while group:
            first = group[0].received_at
            batch = [r for r in group if r.received_at - first <= options.coalesce_window]
            group = [r for r in group if r not in batch]
            records = sorted({rid for r in batch for rid in scope_hashes(steps[r.id]["scope"]["result"])})
            before = steps[batch[0].id]["probe_before"]["result"]["adapters"].get(adapter_id) \
                if len(batch) == 1 else None
            say(",".join(r.id for r in batch), f"remedy of {adapter_id} ({options.method}) for {len(records)} records")
            started = time.perf_counter()
            document = _run_remedy(settings, graph, adapters[adapter_id], records, [r.id for r in batch], before,
                                   options, on_step)
            document["seconds"] = round(time.perf_counter() - started, 2)
            for r in batch:
                documents[r.id].append(document)
    for request in requests:
        done = [d for d in documents[request.id] if not d.get("noop_reason")]
        noop = [{"adapter": d["old_adapter"], "reason": d["noop_reason"]} for d in documents[request.id]
                if d.get("noop_reason")]
        after = {d["new_adapter"]: d["after"] for d in done if d.get("after") is not None}
        remedies = [{k: v for k, v in d.items() if k not in ("before", "after")} for d in done]
        _save_step(state, request.id, "remedy", remedy_started,
                   {"remedies": remedies, "noop": noop})
        # The after-probes ran inside the remedies (their verdicts decide escalation); their own time:
        probing = timedelta(seconds=sum(float(report.get("seconds", 0.0)) for report in after.values()))
        _save_step(state, request.id, "probe_after", datetime.now(timezone.utc) - probing, {"adapters": after})
        outcomes[request.id].steps_run += ["remedy", "probe_after"]
