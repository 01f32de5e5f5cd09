"""Remedy one served adapter for a set of records: plan from the graph, run the method, record the lineage.

Order matters for crash safety (the lineage and the deletion are in erasure.remedy_lineage): (1) the new adapter is built in a folder of its own (atomic; a
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
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from erasure.context import ErasureContext, RemedyCommitted
from erasure.errors import ConfigurationError
from erasure.probing import chat_turns, erasure_probe_config, people_of, record_texts, scored_spans, secret_spans
from erasure.remedy_lineage import affected_shard_adapters, delete_weights, write_remedy_lineage
from erasure.extraction import remedy_extraction_plan
from erasure.statistics import form_flags, leaked_people, still_flagged
from lineage.dataset import DatasetPlan, derive_without
from lineage.errors import NotFoundError
from lineage.store import GraphStore, queries

__all__ = ["RemedyOptions", "RemedyRecord", "adapter_node", "calibration_holdout_ids", "deployed_forms", "lethe_manifest",
           "own_shard_dirs", "probe_served_adapter", "probed_forms", "remedy_adapter"]

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


def deployed_forms(graph: GraphStore, adapter_id: str) -> list[str]:
    """The forms the adapter's deployments record serving (none recorded: empty)."""
    rows = graph.read("MATCH (:Adapter {id: $id})-[:DEPLOYED_TO]->(d:Deployment) WHERE d.form IS NOT NULL "
                      "RETURN DISTINCT d.form AS form ORDER BY form", id=adapter_id)
    return [row["form"] for row in rows]


def probed_forms(recorded: Sequence[str]):
    """The served forms to probe besides the adapter as trained: those the deployments record (fp32 merged
    is the adapter as trained on the CPU), else unlearning.forms.DEFAULT_FORMS when none is recorded."""
    from unlearning.forms import DEFAULT_FORMS, parse_forms

    return tuple(f for f in parse_forms(recorded or DEFAULT_FORMS) if f.name != "fp32")


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


def lethe_manifest(adapter_dir: Path) -> dict:
    """The training manifest Lethe wrote beside a served adapter (its dataset version and training config)."""
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


def calibration_holdout_ids(ctx: ErasureContext, plan: DatasetPlan, removed: set[str]) -> list[str]:
    """The held-out records a remedy's probes calibrate on: the version's holdout less `removed` (the scope), the
    records erased earlier and those sharing a person with the training records, either way round."""
    erased = set(queries.erased_record_ids(ctx.graph, [rid for rid, _ in plan.holdout]))
    named = queries.holdout_sharing_people_with_training(ctx.graph, plan.version.id)
    return [rid for rid, _ in plan.holdout if rid not in removed and rid not in erased and rid not in named]


def _texts(ctx: ErasureContext, ids: Sequence[str]) -> dict[str, str]:
    return record_texts(ctx.open_content(), ids, "remedy")


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


def _model_store(ctx: ErasureContext) -> Path:
    """The folder new adapters are written to, created and checked writable before any work."""
    store = ctx.model_store_dir / "adapters"
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"the model store {store} cannot be created ({exc.strerror}); a remedy writes the "
                                 "new adapter there (fix its permissions or set LETHE_STATE_DIR)") from exc
    if not os.access(store, os.W_OK | os.X_OK):
        raise ConfigurationError(f"the model store {store} is not writable; a remedy writes the new adapter there "
                                 "(fix its permissions)")
    return store


@dataclass(frozen=True)
class RemedyOptions:
    """How to remedy: the method and its settings, escalation, the probes, and the run's test family.

    `family_size`: how many records the caller's run judges in all; escalation then flags by Holm over that
    family (erasure.statistics), as the attestations do, not by each record's own threshold.
    `on_step(step, total, loss)`: progress of the training steps.
    `forms`: the deployments' recorded forms of the adapter (`probed_forms` picks what to probe from them);
    None reads them from the graph.
    """

    method: str = "retrain"
    config: Mapping | None = None
    escalate: bool = True
    probe_config: object = None
    family_size: int | None = None
    on_step: Callable[[int, int, float], None] | None = None
    forms: tuple[str, ...] | None = None  # the deployments' recorded forms (unlearning.forms); None: read them
    relearn: object = None  # unlearning.relearn.RelearnConfig of the relearning check after each attempt; None: off
    # Request id -> (its scope record ids, its identity's keys -> kinds): the people the generation probes
    # prompt; None: the records' owners as one person.
    people: Mapping[str, tuple[Sequence[str], Mapping[str, str]]] | None = None


@dataclass
class _Prepared:
    """What a remedy works on, gathered from the graph and the content store before any training."""

    adapter_dir: Path
    store: Path  # where the new adapter goes
    old: dict
    manifest: dict
    plan: DatasetPlan
    derived: DatasetPlan
    scope: list[str]
    forget: dict[str, str]
    holdout: dict[str, str]
    retain: dict[str, str]
    probe: Callable[[Path], object]  # every form of an adapter
    probe_after: Callable[[Path], object]  # the same, then the relearning check (a remedy's attempts)


def _prepare(ctx: ErasureContext, adapter_dir: Path, record_ids: Sequence[str], probe_config,
             record: RemedyRecord, forms: Sequence[str] | None = None, relearn=None,
             people_by_request=None) -> _Prepared | None:
    """The plan of a remedy, or None (with `record.noop_reason`) when the adapter never trained on the records."""
    from unlearning.probes import probe_adapter, probe_forms

    old, manifest = adapter_node(ctx.graph, adapter_dir), lethe_manifest(adapter_dir)
    base = ctx.require_base_model()
    store = _model_store(ctx)
    plan: DatasetPlan = queries.dataset_plan(ctx.graph, manifest["dataset_version"])
    trained = {rid for s in plan.shards for rid, _ in s.records}
    scope = [rid for rid in dict.fromkeys(record_ids) if rid in trained]
    record.old_adapter = old["id"]
    record.old_manifest = {"dataset_version": plan.version.id, "root": plan.manifest.root,
                           "size": len(plan.manifest.leaves), "trained_by": manifest.get("origin", "lethe")}
    if not scope:
        record.noop_reason = (f"none of the {len(set(record_ids))} record(s) are in the training manifest of "
                              f"{plan.version.id}: the adapter never trained on them, nothing to forget")
        return None
    # Records erased earlier are dropped too: a retrain must never train on a tombstoned record.
    erased = queries.erased_record_ids(ctx.graph, sorted(trained | {rid for rid, _ in plan.holdout}))
    derived = derive_without(plan, set(record_ids) | erased, datetime.now(timezone.utc))
    forget = _texts(ctx, scope)
    holdout = _texts(ctx, calibration_holdout_ids(ctx, plan, set(record_ids)))
    kept = sorted(rid for s in derived.shards for rid, _ in s.records)
    retain = _texts(ctx, kept[:: max(1, len(kept) // RETAIN_SAMPLE)][:RETAIN_SAMPLE])
    probe_config = probe_config or erasure_probe_config()
    secrets, people = secret_spans(forget), people_of(ctx.graph, [*forget, *holdout])
    # Chat records are scored on what their fine-tune's loss taught (the assistant turns, or every message).
    spans = scored_spans(ctx.open_content(), {**forget, **holdout},
                         manifest["training_config"].get("loss_on", "all"))
    served_forms = probed_forms(forms if forms is not None else deployed_forms(ctx.graph, old["id"]))

    shard_test = _shard_test(base, forget, holdout, plan, derived, probe_config, spans)
    shards = len(own_shard_dirs(adapter_dir, plan, set(scope)))
    extraction = remedy_extraction_plan(ctx, people_by_request, scope, list(holdout), probe_config,
                                        len(served_forms) + shards)

    def probe(path: Path):
        report = probe_forms(base, path, served_forms, forget, holdout, probe_config, secrets=secrets,
                             people=people, scored_spans=spans, extraction=extraction)
        report.shard_reference = shard_test(path)
        _probe_own_shards(report, base, own_shard_dirs(path, plan, set(scope), derived), extraction, probe_config)
        return report

    def probe_after(path: Path):
        report = probe(path)
        if relearn is not None:
            # Its flags are what counts: no exposure (the after-probe has it), no forms.
            report.relearning, report.relearned = _relearned_probe(
                base, path, store, list(retain.values()), relearn,
                lambda pm: probe_adapter(pm, forget, holdout, probe_config, people=people, scored_spans=spans))
        return report

    return _Prepared(adapter_dir, store, old, manifest, plan, derived, scope, forget, holdout, retain, probe,
                     probe_after)


def _shard_layout(adapter_dir: Path, plan: DatasetPlan,
                  derived: DatasetPlan | None = None) -> tuple[DatasetPlan, list[Path]] | None:
    """The layout whose shard adapters sit beside a merged adapter, with their directories in shard order: the
    plan's (the adapter before a remedy), else the derived plan's (after an exact retrain, shards at the same
    index); None where the adapter has no shards of its own (one shard: it is the merge; an approximate
    remedy's)."""
    from unlearning.probes.shard_reference import shard_adapter_dirs

    for layout in (plan, derived):
        if layout is None or len(layout.shards) < 2:
            continue
        dirs = shard_adapter_dirs(adapter_dir, [s.id for s in layout.shards])
        if dirs is not None:
            return layout, dirs
    return None


def _shard_test(base: Path, forget: Mapping[str, str], holdout: Mapping[str, str], plan: DatasetPlan,
                derived: DatasetPlan, probe_config, spans: Mapping) -> Callable[[Path], object]:
    """The shard-reference test of an adapter merged from shard adapters (`_shard_layout`); None for any
    other adapter."""
    from unlearning.probes import probe_shards

    index_of = {rid: s.index for s in plan.shards for rid, _ in s.records}

    def test(path: Path):
        found = _shard_layout(path, plan, derived)
        if found is None:
            return None
        layout, dirs = found
        position = {s.index: n for n, s in enumerate(layout.shards)}
        own = {rid: position[index_of[rid]] for rid in forget if index_of.get(rid) in position}
        return probe_shards(base, dirs, own, {**forget, **holdout}, list(holdout), probe_config,
                            scored_spans=spans) if own else None

    return test


def own_shard_dirs(adapter_dir: Path, plan: DatasetPlan, scope: set[str],
                   derived: DatasetPlan | None = None) -> dict[str, Path]:
    """The shard adapters beside a merged adapter (`_shard_layout`) whose shards hold scope records, by
    "shard <index>"; empty where it has none of its own."""
    found = _shard_layout(adapter_dir, plan, derived)
    if found is None:
        return {}
    own = {s.index for s in plan.shards if any(rid in scope for rid, _ in s.records)}
    layout, dirs = found
    return {f"shard {s.index}": d for s, d in zip(layout.shards, dirs) if s.index in own}


def _relearned_probe(base: Path, path: Path, store: Path, retain: list[str], relearn, probe: Callable):
    """The relearning check: a short fine-tune of the adapter at `path` on retained records, in a scratch copy
    beside the model store (evidence, never served, gone after its probe); (its facts, `probe` of it)."""
    from unlearning.probes import open_probe_model
    from unlearning.relearn import relearn_adapter

    with tempfile.TemporaryDirectory(prefix=".relearn-", dir=store) as scratch:
        relearned = Path(scratch) / "adapter"
        facts = relearn_adapter(base, path, retain, relearn, relearned)
        return facts, probe(open_probe_model(base, relearned))


def _probe_own_shards(report, base: Path, shard_dirs: Mapping[str, Path], extraction, probe_config) -> None:
    """Extraction by generation on each shard adapter that trained on the scope (ProbeReport.shard_extraction),
    its time counted in the report's; nothing without an extraction plan."""
    from unlearning.probes import probe_extraction

    if extraction is None:
        return
    for label, shard_dir in shard_dirs.items():
        report.shard_extraction[label], seconds = probe_extraction(base, shard_dir, extraction, probe_config)
        report.generation_seconds += seconds
        report.seconds += seconds


def probe_served_adapter(ctx: ErasureContext, adapter_dir: Path, record_ids: Sequence[str],
                         probe_config=None, forms: Sequence[str] | None = None, people=None) -> RemedyRecord:
    """Probe a served adapter for the records, as a remedy would before it starts; nothing is changed.

    The record holds `before` (the probe report), or `noop_reason` when the adapter never trained on them.
    """
    adapter_dir, clock = Path(adapter_dir), _StageClock()
    record = RemedyRecord(old_adapter="", method="probe", stage_seconds=clock.seconds)
    prepared = _prepare(ctx, adapter_dir, record_ids, probe_config, record, forms, people_by_request=people)
    if prepared is not None:
        clock.lap("prepare")
        record.before = prepared.probe(adapter_dir)
        clock.lap("probe_before")
    return record


def _input_factory(ctx: ErasureContext, prepared: _Prepared, config: Mapping | None):
    """Builds each attempt's RemedyInput: a retrain of the derived shards, or a method on the served adapter."""
    from unlearning.methods.base import RemedyInput

    store, base, p = prepared.store, ctx.require_base_model(), prepared

    def make_input(name: str) -> RemedyInput:
        if name == "retrain":
            out = store / f"{p.derived.version.id.replace(':', '-')}-{p.manifest['config_sha256'][:12]}"
            texts = _texts(ctx, [rid for s in p.derived.shards for rid, _ in s.records])
            return RemedyInput(base, p.adapter_dir, p.forget, p.retain, _fresh_dir(ctx.graph, out),
                               shards={s.id: {rid: texts[rid] for rid, _ in s.records} for s in p.derived.shards},
                               turns=chat_turns(ctx.open_content(), texts),
                               run_dir=p.adapter_dir.parent, training_config=p.manifest["training_config"],
                               manifest={"dataset_version": p.derived.version.id,
                                         "manifest_root": p.derived.version.manifest_root,
                                         "derived_from": p.plan.version.id, "reason": "erasure"})
        out = store / f"{p.old['id']}-{name}-{_config_tag(name, config)}"
        return RemedyInput(base, p.adapter_dir, p.forget, p.retain, _fresh_dir(ctx.graph, out),
                           manifest={**p.manifest, "remedy_method": name, "replaces": p.old["id"]})

    return make_input


def _record_result(record: RemedyRecord, result) -> None:
    """Copy the attempts and the final adapter of `remediate`'s result into the record."""
    final = result.final
    record.attempts = [{"method": a.outcome.method, "kind": a.outcome.kind.value, "sha256": a.outcome.adapter_sha256,
                        "steps": a.outcome.steps, "seconds": round(a.outcome.seconds, 2),
                        "flagged_after": list(a.flagged), "details": a.outcome.details} for a in result.attempts]
    record.escalated, record.escalation_reason = result.escalated, result.escalation_reason
    record.still_flagged, record.after = list(final.flagged), final.probe
    record.kind = final.outcome.kind.value
    record.new_adapter_path, record.new_adapter_sha256 = str(final.outcome.adapter_dir), final.outcome.adapter_sha256
    record.new_adapter = f"adapter-{final.outcome.adapter_sha256[:16]}"


def remedy_adapter(ctx: ErasureContext, adapter_dir: Path, record_ids: Sequence[str],
                   options: RemedyOptions = RemedyOptions(), *, before=None, remedy_id: str | None = None,
                   before_commit: Callable[[RemedyRecord, list[tuple[str, Path]]], None] | None = None
                   ) -> RemedyRecord:
    """Remove `record_ids` from the served adapter at `adapter_dir`; returns what was done and the probes.

    `before`: the old adapter's probe report when the caller already has it (same probe config).
    `before_commit(record, old_weights)`: called with the finished record just before the lineage
    transaction, so a caller can persist it and tell after a crash whether the commit happened.
    """
    from unlearning.methods.registry import get_method, parse_config
    from unlearning.methods.remedy import remediate

    get_method(options.method)  # an unknown method fails before any work
    clock, adapter_dir = _StageClock(), Path(adapter_dir)
    parsed = parse_config(options.method, options.config)
    record = RemedyRecord(old_adapter="", method=options.method, stage_seconds=clock.seconds, remedy_id=remedy_id)
    prepared = _prepare(ctx, adapter_dir, record_ids, options.probe_config, record, options.forms, options.relearn,
                        options.people)
    if prepared is None:
        return record
    clock.lap("prepare")
    record.before = before if before is not None else prepared.probe(adapter_dir)
    if before is None:
        clock.lap("probe_before")
    family = max(options.family_size or 0, len(prepared.scope))
    result = remediate(options.method, parsed, _input_factory(ctx, prepared, options.config), prepared.probe_after,
                       escalate_to="retrain" if options.escalate else None, on_step=options.on_step,
                       flagged_of=lambda report: still_flagged(report, prepared.scope, family, options.people))
    clock.lap("methods")  # training and the probe after each attempt
    _record_result(record, result)
    if result.escalated:
        first = result.attempts[0].probe
        forms = form_flags(first, set(prepared.scope), family)[1]
        leaks = sorted({form for found in leaked_people(first).values() for form in found})
        record.escalation_reason = f"{result.escalation_reason} (flagged in: {', '.join(forms) or 'none'}" + \
            (f"; generations gave the subject's identifiers away in: {', '.join(leaks)})" if leaks else ")")
    _commit(ctx, record, prepared, result.final.outcome, before_commit, clock)
    return record


def _commit(ctx: ErasureContext, record: RemedyRecord, prepared: _Prepared, outcome, before_commit,
            clock: _StageClock) -> None:
    """Utility figures, then the lineage in one transaction, then the old weights deleted."""
    exact = outcome.method == "retrain"
    record.new_dataset_version = prepared.derived.version.id if exact else None
    # The shard adapters that trained on the scope hold it at full strength, whatever the remedy: an approximate
    # method replaces only the merge, so they are quarantined and deleted with the old adapter either way.
    affected = affected_shard_adapters(ctx.graph, prepared.old["id"], prepared.plan, set(prepared.scope))
    record.utility = _utility(ctx.require_base_model(), prepared.adapter_dir, outcome.adapter_dir,
                              prepared.retain, prepared.holdout)
    old_weights = [(prepared.old["id"], prepared.adapter_dir)] + affected
    clock.lap("utility")
    if before_commit is not None:
        before_commit(record, old_weights)
    write_remedy_lineage(ctx.graph, record, prepared.old, prepared.derived if exact else None, prepared.plan,
                         outcome, affected, ctx.require_base_model())
    _tell_committed(ctx, record, prepared.plan.version.id)
    record.deleted_weights = delete_weights(ctx.graph, old_weights)
    clock.lap("lineage_and_deletion")


def _tell_committed(ctx: ErasureContext, record: RemedyRecord, old_version: str) -> None:
    if ctx.on_remedy_committed is None:
        return
    deployments = [r["id"] for r in ctx.graph.read(
        "MATCH (:Adapter {id: $id})-[:DEPLOYED_TO]->(d:Deployment) RETURN d.id AS id ORDER BY id",
        id=record.new_adapter)]
    ctx.on_remedy_committed(ctx.graph, RemedyCommitted(
        adapter=record.new_adapter, dataset_version=record.new_dataset_version or old_version,
        derived=record.new_dataset_version is not None, deployments=tuple(deployments)))


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
