"""Remedies shared by the requests of a run: one per served adapter (within the coalescing window).

Requests whose scopes reach the same served adapter, received within the window of each other, get one
remedy (folder `remedies/<id>/`), and each keeps its own attestation. A remedy writes `pending.json` just
before its lineage transaction; a rerun that finds it asks the graph whether the transaction committed
(the new adapter REPLACES the old one under this remedy id) and either finishes it (delete the old weights)
or starts the remedy again — so a `kill -9` at any point leaves one new adapter and a consistent graph.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from erasure.remediation import RemedyOptions, RemedyRecord, probe_served_adapter, remedy_adapter
from erasure.remedy_lineage import delete_weights, path_of, replacement_of
from erasure.requests import FiledRequest, write_json_atomic
from erasure.run_folder import save_step, step_results
from erasure.run_folder.results import ProbeReport, ServedAdapter
from erasure.context import ErasureContext
from erasure.errors import ConfigurationError
from erasure.probing import GENERATION_BUDGET, erasure_probe_config

__all__ = ["EngineOptions", "person_of", "probe_before", "remedy_all"]


@dataclass(frozen=True)
class EngineOptions:
    """How to remedy: method, its settings, escalation, and the coalescing window."""

    method: str = "retrain"
    config: Mapping | None = None
    escalate: bool = True
    coalesce_window: timedelta = timedelta(hours=24)
    # The relearning check after each remedy attempt (unlearning.relearn); off only with a recorded reason.
    relearn: bool = True
    relearn_off_reason: str | None = None
    # New tokens the extraction test generates per person and model (recorded in every probe report).
    generation_budget: int = GENERATION_BUDGET

    def __post_init__(self):
        if not self.relearn and not (self.relearn_off_reason or "").strip():
            raise ConfigurationError("turning the relearning check off needs a reason, recorded with the remedy "
                                     "(--no-relearn --relearn-off-reason TEXT)")
        self.probe_config()  # a bad budget fails before any work

    def probe_config(self):
        """The probes' settings (erasure.probing.erasure_probe_config) with this run's generation budget."""
        return erasure_probe_config(self.generation_budget)

    def relearn_config(self):
        """The relearning check's unlearning.relearn.RelearnConfig, or None when it is off."""
        from unlearning.relearn import RelearnConfig

        return RelearnConfig() if self.relearn else None

    def relearning(self) -> dict:
        """What the remedy record says of the check: its config, or why it was off."""
        config = self.relearn_config()
        return {"config": config.model_dump()} if config is not None else {"off": self.relearn_off_reason}


def person_of(request: FiledRequest, steps) -> tuple[list[str], dict[str, str]]:
    """A request's scope record ids and its identity's keys (key -> kind): whom the generation probes prompt."""
    keys = steps.identity.keys() if "identity" in steps else {key: kind for kind, key in request.subject_keys.items()}
    return steps.scope.included_ids(), keys


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


def _run_remedy(ctx: ErasureContext, adapter: ServedAdapter, record_ids: list[str],
                people: dict[str, tuple], before: ProbeReport | None, options: EngineOptions,
                on_step: Callable | None, family_size: int) -> dict:
    """One remedy of one served adapter for the union of the requests' records; resumable."""
    from unlearning.methods.registry import parse_config
    request_ids = sorted(people)
    remedy_id = _remedy_id(adapter.id, request_ids)
    folder = ctx.state_dir / "remedies" / remedy_id
    final, pending = folder / "record.json", folder / "pending.json"
    if final.is_file():
        return json.loads(final.read_text(encoding="utf-8"))
    if pending.is_file():
        document = json.loads(pending.read_text(encoding="utf-8"))
        if replacement_of(ctx.graph, adapter.id, remedy_id) == document["new_adapter"]:
            # The lineage committed before the crash: finish deleting the old weights.
            old_weights = [(aid, Path(path)) for aid, path in document.pop("old_weights")]
            document["deleted_weights"] = delete_weights(ctx.graph, old_weights)
            write_json_atomic(final, document)
            pending.unlink()
            return document
        pending.unlink()  # it never committed: the old adapter is still served; start again
    config = parse_config(options.method, options.config).model_dump(mode="json")

    def persist(record: RemedyRecord, old_weights: list[tuple[str, Path]]) -> None:
        chosen = config if not record.escalated else parse_config("retrain", None).model_dump(mode="json")
        document = _record_json(record, chosen, request_ids, adapter.sha256)
        document["relearning"] = options.relearning()
        document["old_weights"] = [[aid, str(path)] for aid, path in old_weights]
        write_json_atomic(pending, document)

    remedy = RemedyOptions(options.method, options.config, options.escalate, probe_config=options.probe_config(),
                           family_size=family_size, on_step=on_step, forms=tuple(adapter.forms),
                           relearn=options.relearn_config(), people=people)
    record = remedy_adapter(ctx, path_of(adapter.uri), record_ids, remedy, before=before, remedy_id=remedy_id,
                            before_commit=persist)
    if record.noop_reason:
        document = {"remedy_id": remedy_id, "old_adapter": adapter.id, "noop_reason": record.noop_reason,
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


def probe_before(ctx: ErasureContext, request: FiledRequest, record_ids: list[str],
                 served: list[ServedAdapter], probe_config=None, shared_generation_seconds: float = 0.0) -> None:
    """Probe every served adapter the request reaches, before any remedy (`probe_config`: default
    erasure.probing.erasure_probe_config()); `shared_generation_seconds`: its share of the run's shared
    generation batches, recorded with the step."""
    started = datetime.now(timezone.utc)
    adapters, noop = {}, []
    people = {request.id: person_of(request, step_results(ctx.state_dir, request.id))}
    for adapter in served:
        record = probe_served_adapter(ctx, path_of(adapter.uri), record_ids, probe_config, forms=adapter.forms,
                                      people=people)
        if record.noop_reason:
            noop.append({"adapter": adapter.id, "reason": record.noop_reason})
        else:
            adapters[adapter.id] = record.before.model_dump(mode="json")
    save_step(ctx.state_dir, request.id, "probe_before", started,
              {"adapters": adapters, "noop": noop, "shared_generation_seconds": round(shared_generation_seconds, 3)})


def remedy_all(ctx: ErasureContext, requests: list[FiledRequest], options: EngineOptions,
               say: Callable[[str, str], None], on_step: Callable | None, family_size: int) -> None:
    """Group the requests by served adapter (and window), remedy each group once, persist per request.

    `family_size`: the records the run judges in all (escalation flags by Holm over them)."""
    state = ctx.state_dir
    remedy_started = datetime.now(timezone.utc)
    steps = {r.id: step_results(state, r.id) for r in requests}
    by_adapter: dict[str, list[FiledRequest]] = {}
    adapters: dict[str, ServedAdapter] = {}
    for request in requests:
        for adapter in steps[request.id].blast_radius.served_adapters:
            by_adapter.setdefault(adapter.id, []).append(request)
            adapters[adapter.id] = adapter
    documents: dict[str, list[dict]] = {r.id: [] for r in requests}
    for adapter_id, group in sorted(by_adapter.items()):
        group = sorted(group, key=lambda r: (r.received_at, r.id))
        while group:
            first = group[0].received_at
            batch = [r for r in group if r.received_at - first <= options.coalesce_window]
            group = [r for r in group if r not in batch]
            records = sorted({rid for r in batch for rid in steps[r.id].scope.included_ids()})
            before = steps[batch[0].id].probe_before.adapters.get(adapter_id) if len(batch) == 1 else None
            say(",".join(r.id for r in batch), f"remedy of {adapter_id} ({options.method}) for {len(records)} records")
            started = time.perf_counter()
            people = {r.id: person_of(r, steps[r.id]) for r in batch}
            document = _run_remedy(ctx, adapters[adapter_id], records, people, before, options, on_step, family_size)
            document["seconds"] = round(time.perf_counter() - started, 2)
            for r in batch:
                documents[r.id].append(document)
    for request in requests:
        done = [d for d in documents[request.id] if not d.get("noop_reason")]
        noop = [{"adapter": d["old_adapter"], "reason": d["noop_reason"]} for d in documents[request.id]
                if d.get("noop_reason")]
        after = {d["new_adapter"]: d["after"] for d in done if d.get("after") is not None}
        remedies = [{k: v for k, v in d.items() if k not in ("before", "after")} for d in done]
        save_step(state, request.id, "remedy", remedy_started, {"remedies": remedies, "noop": noop})
        # The after-probes ran inside the remedies (their verdicts decide escalation); their own time:
        probing = timedelta(seconds=sum(float(report.get("seconds", 0.0)) for report in after.values()))
        save_step(state, request.id, "probe_after", datetime.now(timezone.utc) - probing, {"adapters": after})
