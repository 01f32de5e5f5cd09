"""Remedy one served adapter for a set of records: plan from the graph, run the method, record the lineage.

Order matters for crash safety: (1) the new adapter is built in a folder of its own (atomic; a
leftover from a crash is an orphan the next run removes), (2) the new lineage — derived dataset
version, runs, the adapter that REPLACES the old one, the deployment moved, the old adapters
quarantined — is written in one transaction, (3) only then are the old weights deleted, and the
deletion is recorded with the files' digest. A failure before (2) leaves the old adapter active and
the graph as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

from erasure import wiring
from erasure.errors import ConfigurationError
from erasure.probing import people_of, record_texts, secret_spans
from erasure.settings import Settings
from erasure.statistics import holm_flags
from lineage.dataset import DatasetPlan, derive_without, write_dataset_version
from lineage.errors import NotFoundError
from lineage.models import Adapter, Edge, FineTuneRun
from lineage.store import GraphStore, queries
from lineage.store.writers import LineageWriter

__all__ = ["RemedyRecord", "adapter_node", "delete_weights", "path_of", "remedy_adapter", "replacement_of"]

CODE_VERSION = "lethe-0.1.0"
RETAIN_SAMPLE = 256  # retained records used by retain terms and the utility figures


@dataclass
class RemedyRecord:
    """What a remedy did, for the CLI, the run folder and the attestation (ids and figures only)."""

    old_adapter: str
    method: str
    noop_reason: str | None = None
    new_adapter: str | None = None
    new_adapter_path: str | None = None
    new_adapter_sha256: str | None = None
    new_dataset_version: str | None = None
    kind: str | None = None
    attempts: list[dict] = field(default_factory=list)
    escalated: bool = False
    escalation_reason: str | None = None
    still_flagged: list[str] = field(default_factory=list)
    deleted_weights: list[dict] = field(default_factory=list)
    before: object = None  # ProbeReport of the old adapter
    after: object = None  # ProbeReport of the new adapter
    utility: dict = field(default_factory=dict)
    remedy_id: str | None = None
    old_manifest: dict | None = None  # dataset version id, manifest root and size the old adapter trained on
    stage_seconds: dict[str, float] = field(default_factory=dict)  # prepare, methods (with probes after), ...


def path_of(uri: str) -> Path:
    """The local path of an adapter's file: URI."""
    return Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else Path(uri)


def adapter_node(graph: GraphStore, adapter_dir: Path) -> dict:
    """The graph's Adapter node for a served adapter directory (matched by the files' digest)."""
    from unlearning.base_model import model_dir_sha256

    sha = model_dir_sha256(adapter_dir)
    rows = graph.read("MATCH (a:Adapter {sha256: $sha}) RETURN properties(a) AS a", sha=sha)
    if not rows:
        raise NotFoundError(f"no Adapter in the lineage graph has the digest of {adapter_dir} ({sha[:16]}…); "
                            "remedy adapters that Lethe trained")
    node = rows[0]["a"]
    if node.get("state", "active") != "active":
        raise ConfigurationError(f"adapter {node['id']} is {node['state']}: only the active adapter can be remedied")
    return node


def _manifest(adapter_dir: Path) -> dict:
    path = adapter_dir / "lethe_manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path} is missing or unreadable ({exc}); this adapter was not trained by "
                                 "Lethe, so its training set is unknown") from exc
    if "dataset_version" not in manifest or "training_config" not in manifest:
        raise ConfigurationError(f"{path} lacks the dataset version or the training config; retrain the adapter "
                                 "with this version of Lethe to record them")
    return manifest


def _texts(settings: Settings, ids: Sequence[str]) -> dict[str, str]:
    return record_texts(wiring.content_store(settings), ids, "remedy")


def _config_tag(method: str, config: Mapping | None) -> str:
    canonical = json.dumps({"method": method, "config": dict(config or {})}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _fresh_dir(graph: GraphStore, path: Path) -> Path:
    """`path`, cleared of a leftover from a crashed run (never of an adapter the graph knows)."""
    for staging in path.parent.glob(f".{path.name}.*"):
        if staging.suffix in (".tmp", ".old") and staging.is_dir():
            shutil.rmtree(staging)  # a crashed run's half-written copy (its weights may hold the scope's data)
    if path.exists():
        known = graph.read("MATCH (a:Adapter) WHERE a.uri STARTS WITH $prefix RETURN count(a) AS n",
                           prefix=path.resolve().as_uri())[0]["n"]
        if known:
            raise ConfigurationError(f"{path} holds adapters the graph already records; this remedy has run")
        shutil.rmtree(path)
    return path


def remedy_adapter(settings: Settings, graph: GraphStore, adapter_dir: Path, record_ids: Sequence[str],
                   method: str = "retrain", config: Mapping | None = None, *, escalate: bool = True,
                   probe_config=None, on_step: Callable[[int, int, float], None] | None = None,
                   before=None, probe_only: bool = False, remedy_id: str | None = None,
                   before_commit: Callable[[RemedyRecord, list[tuple[str, Path]]], None] | None = None,
                   family_size: int | None = None) -> RemedyRecord:
    """Remove `record_ids` from the served adapter at `adapter_dir`; returns what was done and the probes.

    `before`: the old adapter's probe report when the caller already has it (same probe config);
    `probe_only`: stop after that probe (the record then holds `before` only).
    `before_commit(record, old_weights)`: called with the finished record just before the lineage
    transaction, so a caller can persist it and tell after a crash whether the commit happened.
    `family_size`: how many records the caller's run judges in all; escalation then flags by Holm over
    that family (erasure.statistics), as the attestations do, not by each record's own threshold.
    """
    from unlearning.methods.base import RemedyInput
    from unlearning.methods.registry import get_method, parse_config
    from unlearning.methods.remedy import remediate
    from unlearning.probes import ProbeConfig, open_probe_model, probe_adapter

    get_method(method)  # an unknown method fails before any work
    clock = _StageClock()
    parsed = parse_config(method, config)
    adapter_dir = Path(adapter_dir)
    old = adapter_node(graph, adapter_dir)
    manifest = _manifest(adapter_dir)
    if settings.base_model is None:
        raise ConfigurationError("set LETHE_BASE_MODEL to the base model the adapter was trained on")
    store = settings.model_store_dir / "adapters"
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"the model store {store} cannot be created ({exc.strerror}); a remedy writes the "
                                 "new adapter there (fix its permissions or set LETHE_STATE_DIR)") from exc
    if not os.access(store, os.W_OK | os.X_OK):
        raise ConfigurationError(f"the model store {store} is not writable; a remedy writes the new adapter there "
                                 "(fix its permissions)")
    plan: DatasetPlan = queries.dataset_plan(graph, manifest["dataset_version"])
    trained = {rid for s in plan.shards for rid, _ in s.records}
    scope = [rid for rid in dict.fromkeys(record_ids) if rid in trained]
    record = RemedyRecord(old_adapter=old["id"], method=method, stage_seconds=clock.seconds)
    record.old_manifest = {"dataset_version": plan.version.id, "root": plan.manifest.root,
                           "size": len(plan.manifest.leaves)}
    if not scope:
        record.noop_reason = (f"none of the {len(set(record_ids))} record(s) are in the training manifest of "
                              f"{plan.version.id}: the adapter never trained on them, nothing to forget")
        return record
    # Records erased earlier are dropped too: a retrain must never train on a tombstoned record.
    erased = queries.erased_record_ids(graph, sorted(trained | {rid for rid, _ in plan.holdout}))
    derived = derive_without(plan, set(record_ids) | erased, datetime.now(timezone.utc))
    forget = _texts(settings, scope)
    # Calibration: held-out records that share no person with the training records, either way round.
    named = queries.holdout_sharing_people_with_training(graph, plan.version.id)
    holdout = _texts(settings, [rid for rid, _ in derived.holdout if rid not in named])
    kept = sorted(rid for s in derived.shards for rid, _ in s.records)
    retain = _texts(settings, kept[:: max(1, len(kept) // RETAIN_SAMPLE)][:RETAIN_SAMPLE])
    # 255 look-alikes per secret: a memorized one reaches 8 bits, chance is ~1.4; enough to tell them apart.
    probe_config = probe_config or ProbeConfig(generate=False, exposure_candidates=255, max_secrets_per_record=1)
    secrets = secret_spans(forget)
    people = people_of(graph, [*forget, *holdout])

    def probe(path: Path):
        return probe_adapter(open_probe_model(settings.base_model, path), forget, holdout, probe_config,
                             secrets=secrets, people=people)

    clock.lap("prepare")
    record.before = before if before is not None else probe(adapter_dir)
    if before is None:
        clock.lap("probe_before")
    if probe_only:
        return record

    def make_input(name: str) -> RemedyInput:
        if name == "retrain":
            out = store / f"{derived.version.id.replace(':', '-')}-{manifest['config_sha256'][:12]}"
            texts = _texts(settings, [rid for s in derived.shards for rid, _ in s.records])
            return RemedyInput(settings.base_model, adapter_dir, forget, retain, _fresh_dir(graph, out),
                               shards={s.id: {rid: texts[rid] for rid, _ in s.records} for s in derived.shards},
                               run_dir=adapter_dir.parent, training_config=manifest["training_config"],
                               manifest={"dataset_version": derived.version.id,
                                         "manifest_root": derived.version.manifest_root,
                                         "derived_from": plan.version.id, "reason": "erasure"})
        out = store / f"{old['id']}-{name}-{_config_tag(name, config)}"
        return RemedyInput(settings.base_model, adapter_dir, forget, retain, _fresh_dir(graph, out),
                           manifest={**manifest, "remedy_method": name, "replaces": old["id"]})

    family = max(family_size or 0, len(scope))

    def flagged_of(report) -> tuple[str, ...]:
        return holm_flags(report, set(scope), report.config.alpha, family)

    result = remediate(method, parsed, make_input, probe, escalate_to="retrain" if escalate else None,
                       on_step=on_step, flagged_of=flagged_of)
    clock.lap("methods")  # training and the probe after each attempt
    final = result.final
    record.attempts = [{"method": a.outcome.method, "kind": a.outcome.kind.value, "sha256": a.outcome.adapter_sha256,
                        "steps": a.outcome.steps, "seconds": round(a.outcome.seconds, 2),
                        "flagged_after": list(a.flagged), "details": a.outcome.details} for a in result.attempts]
    record.escalated, record.escalation_reason = result.escalated, result.escalation_reason
    record.still_flagged, record.after = list(final.flagged), final.probe
    record.kind = final.outcome.kind.value
    record.new_adapter_path, record.new_adapter_sha256 = str(final.outcome.adapter_dir), final.outcome.adapter_sha256
    record.new_adapter = f"adapter-{final.outcome.adapter_sha256[:16]}"
    exact = final.outcome.method == "retrain"
    record.new_dataset_version = derived.version.id if exact else None
    affected = _affected_shard_adapters(graph, old["id"], plan, set(scope)) if exact else []
    record.utility = _utility(settings.base_model, adapter_dir, final.outcome.adapter_dir, retain, holdout)
    record.remedy_id = remedy_id
    old_weights = [(old["id"], adapter_dir)] + affected
    clock.lap("utility")
    if before_commit is not None:
        before_commit(record, old_weights)
    _write_lineage(graph, record, old, derived if exact else None, plan, final.outcome, affected, settings)
    record.deleted_weights = delete_weights(graph, old_weights)
    clock.lap("lineage_and_deletion")
    return record


class _StageClock:
    """Seconds per named stage of a remedy, in the order they ran (for the record and the benchmarks)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.mark = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self.mark, 3)
        self.mark = now


def _utility(base: Path, old_dir: Path, new_dir: Path, retain: Mapping[str, str],
             holdout: Mapping[str, str]) -> dict:
    """Mean NLL of retained and held-out records under the old and the new adapter, and the relative change."""
    from unlearning.adapters import sequence_nll

    figures = {}
    for name, texts in (("retain", list(retain.values())), ("holdout", list(holdout.values()))):
        if not texts:
            continue
        before = sum(sequence_nll(base, old_dir, texts)) / len(texts)
        after = sum(sequence_nll(base, new_dir, texts)) / len(texts)
        figures[name] = {"records": len(texts), "nll_before": before, "nll_after": after,
                         "relative_change": (after - before) / before}
    return figures


def _write_lineage(graph: GraphStore, record: RemedyRecord, old: dict, derived: DatasetPlan | None,
                   plan: DatasetPlan, outcome, affected: list, settings: Settings) -> None:
    """The remedy's lineage in one transaction: derived version, runs, new adapter REPLACES old, deployment."""
    from unlearning.base_model import model_dir_sha256

    now = datetime.now(timezone.utc)
    base_sha = model_dir_sha256(settings.base_model)
    served = Adapter(id=record.new_adapter, sha256=outcome.adapter_sha256,
                     uri=Path(outcome.adapter_dir).resolve().as_uri())
    with graph.transaction() as tx:
        writer = LineageWriter(graph, tx=tx)
        runs, shard_adapters = [], []
        if derived is not None:
            write_dataset_version(writer, derived, parent_id=plan.version.id, reason="erasure")
            run_dir = Path(outcome.details["run_dir"])
            config_sha = outcome.details["training_config_sha256"]
            retrained = set(outcome.details["shards_retrained"])
            for shard_id, sha in outcome.details["shard_adapters"].items():
                adapter = Adapter(id=f"adapter-{sha[:16]}", sha256=sha,
                                  uri=(run_dir / "shards" / shard_id[:16]).resolve().as_uri())
                shard_adapters.append(adapter)
                if shard_id in retrained:
                    run_id = "run-" + hashlib.sha256(f"{shard_id}:{config_sha}:{base_sha}".encode()).hexdigest()[:16]
                    runs.append((FineTuneRun(id=run_id, base_model=str(settings.base_model), base_model_sha256=base_sha,
                                             config_sha256=config_sha, seed=outcome.details["seed"], code_version=CODE_VERSION,
                                             started_at=now, ended_at=now), shard_id, adapter))
        else:
            config_sha = hashlib.sha256(json.dumps(outcome.config, sort_keys=True).encode()).hexdigest()
            runs.append((FineTuneRun(id=f"remedy-{outcome.adapter_sha256[:16]}", base_model=str(settings.base_model),
                                     base_model_sha256=base_sha, config_sha256=config_sha,
                                     seed=int(outcome.config.get("seed", 0)), code_version=CODE_VERSION,
                                     started_at=now, ended_at=now), None, served))
        writer.nodes([run for run, _, _ in runs])
        writer.nodes(shard_adapters + [served])
        writer.edges("TRAINED_ON", [Edge(source=run.id, target=shard) for run, shard, _ in runs if shard])
        writer.edges("PRODUCED", [Edge(source=run.id, target=a.id) for run, _, a in runs])
        writer.edges("MERGED_INTO", [Edge(source=a.id, target=served.id) for a in shard_adapters])
        writer.edges("REPLACES", [Edge(source=served.id, target=old["id"],
                                       props={"reason": "erasure", "method": outcome.method,
                                              "kind": outcome.kind.value, "remedy": record.remedy_id or ""})])
        tx.run("MATCH (o:Adapter {id: $old})-[d:DEPLOYED_TO]->(dep:Deployment) MATCH (n:Adapter {id: $new}) "
               "MERGE (n)-[:DEPLOYED_TO]->(dep) DELETE d", old=old["id"], new=served.id)
        tx.run("MATCH (a:Adapter) WHERE a.id IN $ids SET a.state = 'quarantined', a.quarantined_at = $now",
               ids=[old["id"]] + [aid for aid, _ in affected], now=now)


def delete_weights(graph: GraphStore, adapters: list[tuple[str, Path]]) -> list[dict]:
    """Delete quarantined adapters' files, recording each deletion with the files' digest; idempotent."""
    from unlearning.base_model import model_dir_sha256

    deleted = []
    for adapter_id, path in adapters:
        if not path.exists():
            continue  # deleted by an earlier, interrupted run; its record is below
        digest = model_dir_sha256(path)
        shutil.rmtree(path)
        now = datetime.now(timezone.utc)
        graph.execute("MATCH (a:Adapter {id: $id}) SET a.state = 'deleted', a.weights_deleted_at = $now, "
                      "a.deleted_files_sha256 = $sha", id=adapter_id, now=now, sha=digest)
        deleted.append({"adapter": adapter_id, "sha256": digest, "deleted_at": now.isoformat()})
    return deleted


def _affected_shard_adapters(graph: GraphStore, served_id: str, plan: DatasetPlan, scope: set[str]) -> list:
    """(id, path) of the old shard adapters that trained on a scope record: they hold the data too."""
    touched = [s.id for s in plan.shards if any(rid in scope for rid, _ in s.records)]
    rows = graph.read("MATCH (run:FineTuneRun)-[:TRAINED_ON]->(s:Shard) WHERE s.id IN $shards "
                      "MATCH (run)-[:PRODUCED]->(a:Adapter)-[:MERGED_INTO]->(:Adapter {id: $served}) "
                      "RETURN DISTINCT a.id AS id, a.uri AS uri", shards=touched, served=served_id)
    return [(row["id"], path_of(row["uri"])) for row in rows]


def replacement_of(graph: GraphStore, old_adapter: str, remedy_id: str) -> str | None:
    """The adapter that replaced `old_adapter` in remedy `remedy_id`, if that remedy's lineage was committed."""
    rows = graph.read("MATCH (n:Adapter)-[r:REPLACES]->(:Adapter {id: $old}) WHERE r.remedy = $remedy "
                      "RETURN n.id AS id", old=old_adapter, remedy=remedy_id)
    return rows[0]["id"] if rows else None
