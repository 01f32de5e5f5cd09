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

from attestation import (ErasurePredicate, build_statement, file_sha256, make_bundle, parse_checkpoint, scope_root,
                         sign_statement, subject)
from erasure.requests import FiledRequest, request_dir
from lineage.models import Attestation, Edge
from lineage.store import GraphStore, queries
from lineage.store.writers import LineageWriter

__all__ = ["CODE_VERSION", "attest", "build_predicate", "scope_hashes"]

CODE_VERSION = "lethe-0.1.0"
KEY_ORDER = ("email", "account", "phone", "name")


def scope_hashes(scope: dict) -> dict[str, str]:
    """id -> content hash of the records in scope (included, by rule or by review)."""
    return {r["id"]: r["content_sha256"] for r in scope["records"]
            if r["decision"] in ("included", "included_reviewed")}


def probe_summary(report: dict, own: dict[str, str], reference_auc: float | None = None) -> dict:
    """A ProbeReport (JSON) as the predicate's ProbeSummary, restricted to this request's records.

    The report flags a record when one of its scores passes alpha / scores (Bonferroni per record). The
    attestation speaks for the whole scope at once, so its threshold also divides by the records probed:
    at alpha 0.01 and 15 records, per-record flags would call ~14% of perfect erasures incomplete.
    """
    probed = [r for r in report["records"] if r["record_id"] in own]
    threshold = report["per_score_threshold"] / max(1, len(probed))
    records = []
    estimates = set()
    for r in probed:
        scores = {k: float(v) for k, v in r["scores"].items() if isinstance(v, (int, float)) and math.isfinite(v)}
        p_values = [p["value"] for p in r["p_values"].values()]
        estimates.update(p["estimate"] for p in r["p_values"].values())
        records.append({"record_hash": own[r["record_id"]], "scores": scores,
                        "p_value": min(1.0, max(0.0, min(p_values))) if p_values else None,
                        "flagged": bool(p_values) and min(p_values) < threshold})
    auc = report["auc"].get("ratio")
    auc_value = None
    if auc is not None and auc["forget"] >= 1 and auc["holdout"] >= 1:
        value = float(auc["value"])
        people = auc.get("forget_people") is not None and auc.get("holdout_people") is not None
        auc_value = {"value": value, "ci_low": min(float(auc["ci_low"]), value),
                     "ci_high": max(float(auc["ci_high"]), value), "ci_level": 0.95,
                     "method": "bootstrap_people" if people else "bootstrap",
                     "n_scope": auc["forget"], "n_holdout": auc["holdout"], "reference_value": reference_auc}
        if people:
            auc_value |= {"n_scope_people": auc["forget_people"], "n_holdout_people": auc["holdout_people"]}
    tail = "normal" if any(e.startswith("normal") for e in estimates) else "empirical"
    return {"adapter": report["adapter"], "adapter_sha256": report["adapter_sha256"],
            "alpha": report["config"]["alpha"], "correction": "bonferroni over scores and scope records",
            "tail_estimate": tail, "thresholds": {s: threshold for s in report["scores"]},
            "holdout": {s: {"n": max(1, int(report["holdout_stats"][s]["n"])),
                            "mean": float(report["holdout_stats"][s]["mean"]),
                            "std": float(report["holdout_stats"][s]["std"])} for s in report["scores"]},
            "records_probed": len(records), "records_flagged": sum(r["flagged"] for r in records),
            "auc": auc_value, "records": records}


def _manifest_change(graph: GraphStore, before: dict, after_version: str, targets: list[str],
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
    for name, version in (("before", before["dataset_version"]), ("after", after_version)):
        leaves = (after if name == "after" else queries.dataset_plan(graph, version).manifest).leaves
        path = folder / "manifests" / f"{name}-{hashlib.sha256(version.encode()).hexdigest()[:16]}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(leaf + "\n" for leaf in leaves), encoding="ascii")
        files[f"manifest:{name}:{version}"] = path
    change = {"before": {"dataset_version": before["dataset_version"], "root": before["root"],
                         "size": before["size"]},
              "after": {"dataset_version": after_version, "root": after.root, "size": len(after.leaves)},
              "non_inclusion": proofs}
    return change, reasons, files


def build_predicate(graph: GraphStore, request: FiledRequest, steps: dict[str, dict],
                    folder: Path) -> tuple[dict, dict[str, str | Path]]:
    """The predicate (as a dict for ErasurePredicate) and the statement subjects (name -> digest or file)."""
    scope = steps["scope"]["result"]
    own = scope_hashes(scope)
    targets = sorted(set(own.values()))
    blast = steps["blast_radius"]["result"]
    remedy = steps["remedy"]["result"]
    reasons: list[str] = []
    subjects: dict[str, str | Path] = {}
    manifests, before, after, utility_before, utility_after = [], [], [], [], []
    methods = []
    for rm in remedy["remedies"]:
        methods.append((rm["method"], rm["kind"], rm.get("config") or {}))
        subjects[f"adapter:before:{rm['old_adapter']}"] = rm["old_adapter_sha256"]
        subjects[f"adapter:after:{rm['new_adapter']}"] = rm["new_adapter_sha256"]
        after_report = steps["probe_after"]["result"]["adapters"][rm["new_adapter"]]
        before_report = steps["probe_before"]["result"]["adapters"][rm["old_adapter"]]
        after_summary = probe_summary(after_report, own)
        reference = after_summary["auc"]["value"] if rm["kind"] == "exact" and after_summary["auc"] else None
        before.append(probe_summary(before_report, own, reference))
        after.append({**after_summary, "auc": None if after_summary["auc"] is None else
                      {**after_summary["auc"], "reference_value": reference}})
        if after_summary["records_flagged"]:
            reasons.append(f"{after_summary['records_flagged']} scope record(s) still flag on {rm['new_adapter']}")
        for key, snapshot in (("nll_before", utility_before), ("nll_after", utility_after)):
            metrics = {f"{name}_nll": float(u[key]) for name, u in rm["utility"].items()}
            if metrics:
                snapshot.append({"adapter": rm["old_adapter"] if key == "nll_before" else rm["new_adapter"],
                                 "metrics": metrics})
        if rm["kind"] == "exact":
            change, why, files = _manifest_change(graph, rm["old_manifest"], rm["new_dataset_version"], targets,
                                                  folder)
            manifests.append(change)
            reasons.extend(why)
            subjects.update(files)
    kinds = {k for _, k, _ in methods}
    if methods:
        name, kind, config = methods[0]
        if len({m for m, _, _ in methods}) > 1:
            name = "+".join(sorted({m for m, _, _ in methods}))
        kind = "approximate" if "approximate" in kinds else "exact"
    else:
        name, kind, config = "none_needed", "exact", {"reason": "no served adapter trained on the scope records"}
    erase = steps["erase_records"]
    timings = {"started_at": steps["scope"]["started_at"], "finished_at": erase["finished_at"],
               "steps_seconds": {k: round(float(v["seconds"]), 3) for k, v in steps.items()}}
    base_sha = next((r["base_model_sha256"] for r in steps["probe_before"]["result"]["adapters"].values()), None)
    keys = request.subject_keys
    subject_key = next(keys[k] for k in (*KEY_ORDER, *sorted(keys)) if k in keys)
    predicate = {
        "attested_at": datetime.fromisoformat(erase["finished_at"]),
        "request": {"reference": request.id, "subject_key": subject_key, "regime": request.regime.value,
                    "received_at": request.received_at, "due_at": request.due_at,
                    "extended_due_at": request.extended_due_at, "extension_reason": request.extension_reason},
        "scope": {"record_count": len(targets), "root": scope_root(targets)},
        "blast_radius": _blast(blast),
        "method": {"name": name, "kind": kind, "config": _json_safe(config)},
        "manifests": manifests,
        "probes": {"before": before, "after": after},
        "utility": {"before": utility_before, "after": utility_after},
        "timings": {**timings, "started_at": datetime.fromisoformat(timings["started_at"]),
                    "finished_at": datetime.fromisoformat(timings["finished_at"])},
        "versions": {"code_version": CODE_VERSION, "base_model_sha256": base_sha or "0" * 64},
        "verdict": {"status": "incomplete" if reasons else "erased", "reasons": reasons},
    }
    if not targets:
        predicate["verdict"] = {"status": "incomplete", "reasons": ["the request's scope is empty: no record of "
                                                                    "the subject was found"]}
    return predicate, subjects


def _blast(blast: dict) -> dict:
    ids = {"datasets": sorted({d["id"] for d in blast["datasets"]}), "shards": sorted(set(blast["shards"])),
           "runs": sorted(set(blast["runs"])), "adapters": sorted({a["id"] for a in blast["adapters"]}),
           "deployments": sorted({d["id"] for d in blast["deployments"]})}
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


def attest(state_dir: Path, graph: GraphStore, request: FiledRequest, steps: dict[str, dict]) -> dict:
    """Sign the request's statement, log it once, save the bundle, record the Attestation; the attest result."""
    from erasure.keyring import Keyring

    folder = request_dir(state_dir, request.id)
    predicate, subject_map = build_predicate(graph, request, steps, folder)
    model = ErasurePredicate.model_validate(predicate)
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

