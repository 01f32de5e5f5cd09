"""Turn a request's persisted steps into an erasure predicate, sign it, log it, and record it in the graph.

The statement is built only from what the run folder holds (ids, hashes, figures) and is dated by the
erase step, so a rerun after a crash rebuilds the very same bytes (Ed25519 signatures are
deterministic): if the log already holds the envelope, it is not appended twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from datetime import datetime, timezone
from pathlib import Path

from attestation import (ErasurePredicateV2, build_statement, file_sha256, make_bundle, parse_checkpoint, scope_root,
                         sign_statement, subject)
from erasure.identity import IdentityResult
from erasure.requests import FiledRequest, request_dir
from erasure.run_folder import RunSteps
from erasure.run_folder.results import BlastResult, ManifestRef, ProbeReport
from erasure.statistics import StatisticsResult, form_key
from erasure.sweep import SweepResult
from lineage.models import Attestation, Edge
from lineage.store import GraphStore, queries
from lineage.store.writers import LineageWriter
from lineage.training_runs import CODE_VERSION
from unlearning.probes.extraction import ExtractionReport

__all__ = ["attest", "build_predicate"]

KEY_ORDER = ("email", "account", "phone", "name")


def probe_summary(report: ProbeReport, own: dict[str, str], reference_auc: float | None = None,
                  run: dict[str, tuple[float, bool]] | None = None, tests: int | None = None,
                  name: str | None = None) -> dict:
    """A ProbeReport (JSON) as the predicate's ProbeSummary, restricted to this request's records.

    `name`: the adapter's id, `id@form` for a served form (erasure.statistics.form_key), as the run's
    false-alarm control names it; default: the report's adapter path.

    `run`: record id -> (Holm-adjusted p-value, flagged) from the run's false-alarm control over `tests`
    (adapter, record) tests of every request (erasure.statistics); without it (older run folders), a
    record flags below alpha / scores / records probed (Bonferroni over this request alone).
    """
    probed = [r for r in report.records if r.record_id in own]
    threshold = report.per_score_threshold / max(1, tests if run is not None and tests else len(probed))
    records = []
    estimates = set()
    for r in probed:
        scores = {k: float(v) for k, v in r.scores.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        p_values = [p.value for p in r.p_values.values()]
        estimates.update(p.estimate for p in r.p_values.values())
        flagged = run[r.record_id][1] if run is not None and r.record_id in run else \
            bool(p_values) and min(p_values) < threshold
        records.append({"record_hash": own[r.record_id], "scores": scores,
                        "p_value": min(1.0, max(0.0, min(p_values))) if p_values else None, "flagged": flagged})
    tail = "normal" if any(e.startswith("normal") for e in estimates) else "empirical"
    correction = "holm over scores and the scope records of every request in the run" if run is not None \
        else "bonferroni over scores and scope records"
    return {"adapter": name or report.adapter, "adapter_sha256": report.adapter_sha256,
            "alpha": report.config.alpha, "correction": correction,
            "tail_estimate": tail, "thresholds": {s: threshold for s in report.scores},
            "holdout": {s: {"n": max(1, int(report.holdout_stats[s]["n"])),
                            "mean": float(report.holdout_stats[s]["mean"]),
                            "std": float(report.holdout_stats[s]["std"])} for s in report.scores},
            "records_probed": len(records), "records_flagged": sum(r["flagged"] for r in records),
            "auc": _auc(report, reference_auc), "records": records}


def _auc(report: ProbeReport, reference_auc: float | None) -> dict | None:
    auc = report.auc.get("ratio")
    if auc is None or auc.forget < 1 or auc.holdout < 1:
        return None
    value = float(auc.value)
    people = auc.forget_people is not None and auc.holdout_people is not None
    out = {"value": value, "ci_low": min(float(auc.ci_low), value), "ci_high": max(float(auc.ci_high), value),
           "ci_level": 0.95, "method": "bootstrap_people" if people else "bootstrap",
           "n_scope": auc.forget, "n_holdout": auc.holdout, "reference_value": reference_auc}
    if people:
        out |= {"n_scope_people": auc.forget_people, "n_holdout_people": auc.holdout_people}
    return out


def _manifest_change(graph: GraphStore, before: ManifestRef, after_version: str, targets: list[str],
                     folder: Path) -> tuple[dict, list[str], dict[str, str]]:
    """Before/after manifest refs, non-inclusion proofs of the targets, reasons, and the manifest files."""
    plan = queries.dataset_plan(graph, after_version)
    after = plan.manifest
    reasons, proofs = [], []
    for target in targets:
        if target in after:
            reasons.append(f"a scope record's content hash is still in the manifest of {after_version} "
                           "(another record has the same text)")
            continue
        proof = dataclasses.asdict(after.non_inclusion_proof(target))
        for side in ("left", "right"):
            if proof[side] is not None:
                proof[side]["path"] = list(proof[side]["path"])
        proofs.append(proof)
    files = {}
    for name, version in (("before", before.dataset_version), ("after", after_version)):
        leaves = (after if name == "after" else queries.dataset_plan(graph, version).manifest).leaves
        path = folder / "manifests" / f"{name}-{hashlib.sha256(version.encode()).hexdigest()[:16]}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(leaf + "\n" for leaf in leaves), encoding="ascii")
        files[f"manifest:{name}:{version}"] = path
    change = {"before": before.model_dump(exclude={"trained_by"}),  # said in the method's config
              "after": {"dataset_version": after_version, "root": after.root, "size": len(after.leaves)},
              "non_inclusion": proofs}
    return change, reasons, files


def _run_flags(steps: RunSteps, phase: str) -> tuple[dict[tuple[str, str], tuple[float, bool]], int | None]:
    """(adapter, record) -> (adjusted p, flagged) for one phase of the run's statistics, and the tests made."""
    if "statistics" not in steps:
        return {}, None
    stats = steps.statistics
    flags = {(r.adapter, r.record_id): (r.p_adjusted, r.flagged) for r in stats.records if r.phase == phase}
    return flags, stats.tests_before if phase == "before" else stats.tests_after


def _for_adapter(flags: dict, adapter: str) -> dict[str, tuple[float, bool]] | None:
    return {rid: v for (a, rid), v in flags.items() if a == adapter} if flags else None


def generation_fields(report: ProbeReport, person: str, key: str) -> tuple[dict, list[str]]:
    """One person's (a request id's) extraction tests on one probe as the predicate's fields, with the shard
    adapters' where the probe prompted them; and the reasons their leaks give (an after-probe's turn the
    verdict). `key`: the adapter or form's name in the reasons."""
    fields = {"generation": generation_summary(report.extraction.get(person))}
    reasons = generation_reasons(fields["generation"], key)
    if report.shard_extraction:
        shards = {label: summary for label, reports in report.shard_extraction.items()
                  if (summary := generation_summary(reports.get(person)))}
        fields["shard_generations"] = shards
        for label, summary in shards.items():
            reasons += generation_reasons(summary, f"{key} {label} adapter")
    return fields, reasons


def generation_summary(found: ExtractionReport | None) -> dict | None:
    """One person's extraction test on one adapter, as the predicate carries it."""
    if found is None:
        return None
    return {"subject": found.person.model_dump(), "chance": found.chance.model_dump(),
            "chance_rate": found.chance.leak_rate,
            "p_value": min(1.0, found.p_value), "alpha": found.alpha, "leaked": found.leaked}


def generation_reasons(summary: dict | None, key: str) -> list[str]:
    """A leak after the remedy, for the verdict: what the generations gave away, how often, against chance."""
    if not summary or not summary["leaked"]:
        return []
    subject = summary["subject"]
    return [f"generations of {key} still give away the subject's {', '.join(sorted(subject['hits']))} "
            f"({subject['leaking_samples']} of {subject['greedy'] + subject['sampled']} samples, "
            f"{subject['leaking_greedy']} greedy; held-out people's rate {summary['chance_rate']:.3g}, "
            f"p = {summary['p_value']:.2g})"]


def _remedy_evidence(graph: GraphStore, steps: RunSteps, own: dict[str, str], folder: Path, person: str) -> dict:
    """Per remedy: subjects, probe summaries before and after, utility and manifests; and the reasons."""
    targets = sorted(set(own.values()))
    before_flags, before_tests = _run_flags(steps, "before")
    after_flags, after_tests = _run_flags(steps, "after")
    out = {"methods": [], "subjects": {}, "before": [], "after": [], "utility_before": [], "utility_after": [],
           "manifests": [], "reasons": []}
    for rm in steps.remedy.remedies:
        config = dict(rm.config or {})
        if rm.old_manifest is not None and rm.old_manifest.trained_by != "lethe":  # e.g. external:trl.SFTTrainer
            config["replaced_adapter_trained_by"] = rm.old_manifest.trained_by
        out["methods"].append((rm.method, rm.kind, config))
        out["subjects"][f"adapter:before:{rm.old_adapter}"] = rm.old_adapter_sha256
        out["subjects"][f"adapter:after:{rm.new_adapter}"] = rm.new_adapter_sha256
        after_report = steps.probe_after.adapters[rm.new_adapter]
        before_report = steps.probe_before.adapters[rm.old_adapter]
        for form, report in after_report.variants().items():  # the adapter as trained, then each served form
            key = form_key(rm.new_adapter, form)
            after_summary = probe_summary(report, own, None, _for_adapter(after_flags, key), after_tests, key)
            fields, reasons = generation_fields(report, person, key)
            after_summary.update(fields)
            out["reasons"].extend(reasons)
            reference = after_summary["auc"]["value"] if rm.kind == "exact" and after_summary["auc"] else None
            before = before_report.variants().get(form)
            if before is not None:
                old_key = form_key(rm.old_adapter, form)
                out["before"].append({**probe_summary(before, own, reference, _for_adapter(before_flags, old_key),
                                                      before_tests, old_key),
                                      **generation_fields(before, person, old_key)[0]})
            out["after"].append({**after_summary, "auc": None if after_summary["auc"] is None else
                                 {**after_summary["auc"], "reference_value": reference}})
            if after_summary["records_flagged"] and "statistics" not in steps:
                out["reasons"].append(f"{after_summary['records_flagged']} scope record(s) still flag on {key}")
        for key, snapshot in (("nll_before", out["utility_before"]), ("nll_after", out["utility_after"])):
            metrics = {f"{name}_nll": float(getattr(u, key)) for name, u in rm.utility.items()}
            if metrics:
                snapshot.append({"adapter": rm.old_adapter if key == "nll_before" else rm.new_adapter,
                                 "metrics": metrics})
        if rm.kind == "exact":
            change, why, files = _manifest_change(graph, rm.old_manifest, rm.new_dataset_version, targets, folder)
            out["manifests"].append(change)
            out["reasons"].extend(why)
            out["subjects"].update(files)
    return out


def _method(methods: list) -> dict:
    if not methods:
        return {"name": "none_needed", "kind": "exact",
                "config": {"reason": "no served adapter trained on the scope records"}}
    name, _, config = methods[0]
    if len({m for m, _, _ in methods}) > 1:
        name = "+".join(sorted({m for m, _, _ in methods}))
    kind = "approximate" if any(k == "approximate" for _, k, _ in methods) else "exact"
    return {"name": name, "kind": kind, "config": _json_safe(config)}


def _timings(steps: RunSteps) -> dict:
    first = "identity" if "identity" in steps else "scope"
    return {"started_at": steps.file(first).started_at, "finished_at": steps.file("erase_records").finished_at,
            "steps_seconds": {name: round(float(steps.file(name).seconds), 3) for name in steps.names}}


def build_predicate(graph: GraphStore, request: FiledRequest, steps: RunSteps,
                    folder: Path) -> tuple[dict, dict[str, str | Path]]:
    """The predicate (as a dict for ErasurePredicateV2) and the statement subjects (name -> digest or file)."""
    own = steps.scope.included_hashes()
    targets = sorted(set(own.values()))
    evidence = _remedy_evidence(graph, steps, own, folder, request.id)
    base_sha = next((r.base_model_sha256 for r in steps.probe_before.adapters.values()), None)
    keys = request.subject_keys
    subject_key = next(keys[k] for k in (*KEY_ORDER, *sorted(keys)) if k in keys)
    reasons = evidence["reasons"] + sweep_reasons(steps.sweep_after) + flag_reasons(steps)
    if not targets:
        reasons.append("the request's scope is empty: no record of the subject was found")
    predicate = {
        "attested_at": steps.file("erase_records").finished_at,
        "request": {"reference": request.id, "subject_key": subject_key, "regime": request.regime.value,
                    "received_at": request.received_at, "due_at": request.due_at,
                    "extended_due_at": request.extended_due_at, "extension_reason": request.extension_reason},
        "scope": {"record_count": len(targets), "root": scope_root(targets)},
        "blast_radius": _blast(steps.blast_radius),
        "method": _method(evidence["methods"]),
        "manifests": evidence["manifests"],
        "probes": {"before": evidence["before"], "after": evidence["after"]},
        "utility": {"before": evidence["utility_before"], "after": evidence["utility_after"]},
        "timings": _timings(steps),
        "versions": {"code_version": CODE_VERSION, "base_model_sha256": base_sha or "0" * 64},
        "identity": identity_summary(steps.identity),
        "sweeps": {"before": sweep_summary(steps.sweep_before), "after": sweep_summary(steps.sweep_after)},
        "false_alarm_control": false_alarm_control(steps.statistics, own),
        "training": steps.blast_radius.training,
        "verdict": {"status": "incomplete" if reasons else "erased", "reasons": list(dict.fromkeys(reasons))},
    }
    return predicate, evidence["subjects"]


def identity_summary(identity: IdentityResult) -> dict:
    """The identity as the predicate carries it: kinds, hops, decisions and counts (no keys, no values)."""
    return {"expand": identity.expand, "hops": identity.hops,
            "identifiers": [{"kind": i.kind, "hop": i.hop, "decision": str(i.decision.value),
                             "owned_records": i.owned_records, "people": i.people,
                             "value_found": i.value_source is not None} for i in identity.identifiers],
            "ambiguous_records": len(identity.ambiguous_records)}


def sweep_summary(sweep: SweepResult) -> dict:
    """A sweep as the predicate carries it: counts, kinds, and its hits by content hash."""
    return {"texts_scanned": sweep.texts_scanned, "batch_lines_scanned": sweep.batch_lines_scanned,
            "training_texts_scanned": sweep.training_texts_scanned, "identifier_kinds": sweep.identifier_kinds,
            "secrets": sweep.secrets, "weak_hits": sweep.weak_hits,
            "hits": [{"record_hash": h.content_sha256, "places": h.places, "kinds": h.kinds,
                      "disposition": h.disposition} for h in sweep.hits]}


def sweep_reasons(sweep: SweepResult) -> list[str]:
    """Residue the sweep after the remedy found, one reason per record."""
    why = {"excluded_by_reviewer": " (a reviewer excluded it from the scope)",
           "not_held": " (in a batch file, not in the lineage graph)"}
    return [f"record {h.record_id} still holds the subject's {', '.join(h.kinds)} "
            f"({', '.join(h.places)}){why.get(h.disposition, '')}" for h in sweep.hits]


def flag_reasons(steps: RunSteps) -> list[str]:
    """Records that still flag after the remedy with a cause (never a flag the run's statistics call chance)."""
    if "statistics" not in steps:
        return []
    return [f"record {r.record_id} still flags on {r.adapter} (Holm-adjusted p = {r.p_adjusted:.2g}): "
            f"{r.cause}" for r in steps.statistics.flagged_after() if r.cause]


def false_alarm_control(stats: StatisticsResult, own: dict[str, str]) -> dict:
    """The run's Holm control as the predicate carries it, with this request's flags after the remedy."""
    flags = [{"adapter": r.adapter, "record_hash": own[r.record_id], "p_value": min(1.0, r.p_value),
              "p_adjusted": r.p_adjusted, "cause": r.cause} for r in stats.flagged_after() if r.record_id in own]
    return {"method": stats.method, "alpha": stats.alpha, "run_requests": len(stats.run_requests),
            "tests_before": stats.tests_before, "tests_after": stats.tests_after, "flags_after": flags}


def _blast(blast: BlastResult) -> dict:
    ids = {"datasets": sorted({d.id for d in blast.datasets}), "shards": sorted(set(blast.shards)),
           "runs": sorted(set(blast.runs)), "adapters": sorted({a.id for a in blast.adapters}),
           "deployments": sorted({d.id for d in blast.deployments})}
    return {"counts": {k: len(v) for k, v in ids.items()}, "ids": ids}


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def attest(state_dir: Path, graph: GraphStore, request: FiledRequest, steps: RunSteps) -> dict:
    """Sign the request's statement, log it once, save the bundle, record the Attestation; the attest result."""
    from erasure.keyring import Keyring

    folder = request_dir(state_dir, request.id)
    predicate, subject_map = build_predicate(graph, request, steps, folder)
    model = ErasurePredicateV2.model_validate(predicate)
    subjects = [subject(name, value if isinstance(value, str) else file_sha256(value))
                for name, value in sorted(subject_map.items())]
    if not subjects:
        subjects = [subject(f"scope:{request.id}", model.scope.root)]
    statement = build_statement(subjects, model)
    keyring = Keyring.open(state_dir)
    envelope = sign_statement(statement, keyring.signing_keys).to_json()
    log = keyring.log
    index = log.index_of(envelope)
    if index is None:
        index = log.append(envelope)
    note = log.latest_checkpoint()
    if note is None or parse_checkpoint(note).checkpoint.size <= index:
        note = log.sign_checkpoint(keyring.log_keys, now=datetime.now(timezone.utc)).to_text()
    bundle = make_bundle(envelope, log, note)
    bundle_path = folder / "attestation.bundle.json"
    bundle.save(bundle_path)
    envelope_sha = hashlib.sha256(envelope).hexdigest()
    node = Attestation(id=f"att-{envelope_sha[:24]}", envelope_sha256=envelope_sha, log_index=index)
    with graph.transaction() as tx:
        writer = LineageWriter(graph, tx=tx)
        writer.nodes([node])
        writer.edges("FOR", [Edge(source=node.id, target=request.id)])
    result = {"bundle": bundle_path.name, "envelope_sha256": envelope_sha, "log_index": index,
              "verdict": model.verdict.model_dump(), "registry": str(keyring.registry_path),
              "subjects": {s.name: s.digest.sha256 for s in subjects}}
    return result

