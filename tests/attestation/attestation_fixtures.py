"""Deterministic keys, a complete erasure predicate, and a small log with one attestation in it."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from attestation import (Bundle, ErasurePredicateV2, KeyPurpose, KeyRegistry, SigningKey, Statement,
                         TransparencyLog, build_statement, make_bundle, sign_statement, subject)
from lineage.merkle import Manifest, merkle_root

UTC = timezone.utc
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEYS_FROM, KEYS_UNTIL = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
ORIGIN = "lethe.test/erasure-log"


def deterministic_key(seed: str) -> SigningKey:
    """An Ed25519 key derived from a label, so test data is reproducible."""
    return SigningKey(Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest()))


ATTESTATION_KEY = deterministic_key("attestation key")
LOG_KEY = deterministic_key("log key")
OTHER_KEY = deterministic_key("someone else")


def registry() -> KeyRegistry:
    """Trusts ATTESTATION_KEY for attestations and LOG_KEY for checkpoints during 2025."""
    keys = KeyRegistry()
    keys.trust(ATTESTATION_KEY.public_key, KeyPurpose.ATTESTATION, KEYS_FROM, KEYS_UNTIL)
    keys.trust(LOG_KEY.public_key, KeyPurpose.LOG, KEYS_FROM, KEYS_UNTIL)
    return keys


def hashes(tag: str, n: int) -> list[str]:
    """n distinct SHA-256 hex digests."""
    return [hashlib.sha256(f"{tag}-{i}".encode()).hexdigest() for i in range(n)]


SCOPE = hashes("scope", 3)
RETAINED = hashes("retained", 20)
MANIFEST_BEFORE = Manifest.of(SCOPE + RETAINED)
MANIFEST_AFTER = Manifest.of(RETAINED)
ADAPTER_BEFORE_SHA = hashlib.sha256(b"adapter before").hexdigest()
ADAPTER_AFTER_SHA = hashlib.sha256(b"adapter after").hexdigest()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _probe(adapter: str, sha: str, flagged: bool) -> dict:
    records = [{"record_hash": h, "scores": {"nll_ratio": 0.41 if flagged else 1.02, "min_k_pp": -0.3},
                "p_value": 0.0009 if flagged else 0.62, "flagged": flagged} for h in SCOPE]
    return {"adapter": adapter, "adapter_sha256": sha, "alpha": 0.01, "correction": "bonferroni",
            "tail_estimate": "normal", "thresholds": {"nll_ratio": 0.7, "min_k_pp": 1.5},
            "holdout": {"nll_ratio": {"n": 200, "mean": 1.0, "std": 0.08},
                        "min_k_pp": {"n": 200, "mean": 0.1, "std": 0.5}},
            "records_probed": len(records), "records_flagged": len(records) if flagged else 0,
            "auc": {"value": 0.97 if flagged else 0.52, "ci_low": 0.9 if flagged else 0.41,
                    "ci_high": 1.0 if flagged else 0.63, "ci_level": 0.95, "method": "bootstrap",
                    "n_scope": 3, "n_holdout": 200, "reference_value": 0.5},
            "records": records}


def _sweep(texts: int) -> dict:
    return {"texts_scanned": texts, "batch_lines_scanned": texts, "training_texts_scanned": 20,
            "identifier_kinds": ["account", "email", "name"], "secrets": 1, "hits": [], "weak_hits": 0}


V2_FIELDS = {
    "identity": {"expand": True, "hops": 1, "ambiguous_records": 0, "identifiers": [
        {"kind": "email", "hop": 0, "decision": "given", "owned_records": 3, "people": 1, "value_found": True},
        {"kind": "name", "hop": 1, "decision": "followed", "owned_records": 3, "people": 1, "value_found": True},
        {"kind": "account", "hop": 1, "decision": "shared_not_followed", "owned_records": 9, "people": 2,
         "value_found": False}]},
    "sweeps": {"before": _sweep(23), "after": _sweep(20)},
    "false_alarm_control": {"method": "holm", "alpha": 0.01, "run_requests": 2, "tests_before": 5, "tests_after": 5,
                            "flags_after": []},
    "training": {"subject_records": 3, "trained": 3, "held_out": 0, "not_in_any_run": 0, "never_trained": False,
                 "adapters_trained_on_mentions": []},
}


def predicate_json() -> dict:
    """A complete, valid erasure predicate (v2) as JSON (a fresh copy each call)."""
    return {**predicate_json_v1(), **copy.deepcopy(V2_FIELDS)}


def predicate_json_v1() -> dict:
    """A complete, valid erasure predicate of the first version (v1) as JSON (a fresh copy each call)."""
    non_inclusion = [json.loads(json.dumps(asdict(MANIFEST_AFTER.non_inclusion_proof(h)))) for h in SCOPE]
    value = {
        "attested_at": _iso(NOW),
        "request": {"reference": "req_7f3a9c2e5b1d", "subject_key": hashlib.sha256(b"hmac of subject").hexdigest(),
                    "regime": "gdpr-art17", "received_at": _iso(NOW - timedelta(days=10)),
                    "due_at": _iso(NOW + timedelta(days=20)), "extended_due_at": None, "extension_reason": None},
        "scope": {"record_count": len(SCOPE), "root": merkle_root(SCOPE)},
        "blast_radius": {"counts": {"datasets": 1, "shards": 2, "runs": 1, "adapters": 1, "deployments": 1},
                         "ids": {"datasets": ["tickets:v1"], "shards": ["s0", "s1"], "runs": ["run-1"],
                                 "adapters": ["adapter-1"], "deployments": ["prod-chat"]}},
        "method": {"name": "retrain", "kind": "exact", "config": {"seed": 7, "epochs": 2, "lr": 0.0002}},
        "manifests": [{"before": {"dataset_version": "tickets:v1", "root": MANIFEST_BEFORE.root,
                                  "size": len(MANIFEST_BEFORE.leaves)},
                       "after": {"dataset_version": "tickets:v2", "root": MANIFEST_AFTER.root,
                                 "size": len(MANIFEST_AFTER.leaves)},
                       "non_inclusion": non_inclusion}],
        "probes": {"before": [_probe("adapter-1", ADAPTER_BEFORE_SHA, True)],
                   "after": [_probe("adapter-2", ADAPTER_AFTER_SHA, False)]},
        "utility": {"before": [{"adapter": "adapter-1", "metrics": {"retained_nll": 2.1, "holdout_nll": 2.6}}],
                    "after": [{"adapter": "adapter-2", "metrics": {"retained_nll": 2.15, "holdout_nll": 2.6}}]},
        "timings": {"started_at": _iso(NOW - timedelta(hours=2)), "finished_at": _iso(NOW - timedelta(minutes=5)),
                    "steps_seconds": {"resolve": 1.5, "probe_before": 30.0, "retrain": 4000.0, "probe_after": 31.0}},
        "versions": {"code_version": "0.1.0+g905aec2", "base_model_sha256": hashlib.sha256(b"base").hexdigest()},
        "verdict": {"status": "erased", "reasons": []},
    }
    return copy.deepcopy(value)


def make_predicate(value: dict | None = None) -> ErasurePredicateV2:
    """Validate a predicate from its JSON form (the default one if none is given)."""
    return ErasurePredicateV2.model_validate_json(json.dumps(value if value is not None else predicate_json()))


SUBJECT_DIGESTS = {"adapter:before:adapter-1": ADAPTER_BEFORE_SHA, "adapter:after:adapter-2": ADAPTER_AFTER_SHA,
                   "manifest:after:tickets:v2": hashlib.sha256(b"manifest v2 file").hexdigest()}


def make_statement(predicate: ErasurePredicateV2 | None = None) -> Statement:
    """A valid statement over the default subjects."""
    subjects = [subject(name, digest) for name, digest in sorted(SUBJECT_DIGESTS.items())]
    return build_statement(subjects, predicate or make_predicate())


@dataclass(frozen=True)
class World:
    """A log holding the attestation among other entries, its bundle, and a later checkpoint."""

    directory: Path
    envelope: bytes
    bundle: Bundle
    later_checkpoint: str
    consistency_proof: tuple[bytes, ...]


def build_world(directory: Path) -> World:
    """Append 4 other entries, the attestation, sign; append 3 more, sign again."""
    log = TransparencyLog.open(directory, origin=ORIGIN)
    for i in range(4):
        log.append(f"earlier entry {i}".encode())
    envelope = sign_statement(make_statement(), [ATTESTATION_KEY]).to_json()
    log.append(envelope)
    first = log.sign_checkpoint([LOG_KEY], now=NOW + timedelta(minutes=1)).to_text()
    for i in range(3):
        log.append(f"later entry {i}".encode())
    later = log.sign_checkpoint([LOG_KEY], now=NOW + timedelta(hours=1)).to_text()
    return World(directory, envelope, make_bundle(envelope, log, first), later,
                 tuple(log.consistency_proof(5, log.size)))
