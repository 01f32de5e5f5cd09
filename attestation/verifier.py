"""Offline verification of an erasure attestation, step by step, stopping at the first failure.

Steps, in order: (bundle,) envelope, signature, payload_type, statement_type, predicate,
signing_key_window, evidence, subjects, checkpoint, inclusion, consistency. Each is recorded as pass,
fail or skipped (not requested, or after a failure); the report's exit code is the failing error's.
Signatures are checked against the key's window at the statement's own date (`attested_at`), and
that date must not be later than the checkpoint that proves the envelope was logged.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Mapping

from attestation.bundle import Bundle, ConsistencyEvidence, InclusionEvidence
from attestation.checkpoint import Checkpoint, verify_checkpoint
from attestation.digests import path_sha256
from attestation.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, verify_envelope
from attestation.encoding import format_utc, loads_canonical, require_utc
from attestation.errors import (AttestationError, CheckpointError, ConsistencyError, DigestMismatch,
                                InclusionError, InputError, KeyRegistryError, PayloadTypeError,
                                StatementError)
from attestation.keys import KeyPurpose, KeyRegistry
from attestation.merkle import leaf_hash, verify_consistency, verify_inclusion
from attestation.predicate import check_evidence
from attestation.report import STEPS, StepResult, VerificationReport
from attestation.statement import STATEMENT_TYPE, AnyStatement, parse_statement

# Signer and log clocks may differ a little; more than this is treated as a false date.
CLOCK_SKEW = timedelta(minutes=5)


class _Verification:
    """The steps of one verification; each returns what it found or raises its AttestationError."""

    def __init__(self, envelope: bytes, registry: KeyRegistry, threshold: int, now: datetime):
        self.data, self.registry, self.threshold, self.now = envelope, registry, threshold, now
        self.report = VerificationReport()
        self.envelope: Envelope | None = None

    @property
    def statement(self) -> AnyStatement:
        return self.report.statement

    def parse(self) -> str:
        self.envelope = Envelope.from_json(self.data)
        return f"{len(self.envelope.signatures)} signature(s), payload {len(self.envelope.payload)} bytes"

    def signature(self) -> str:
        self.report.signers = verify_envelope(self.envelope, self.registry, threshold=self.threshold)
        return "signed by " + ", ".join(self.report.signers)

    def payload_type(self) -> str:
        if self.envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
            raise PayloadTypeError(f"payloadType is {self.envelope.payload_type!r}, "
                                   f"expected {PAYLOAD_TYPE_IN_TOTO!r}")
        return PAYLOAD_TYPE_IN_TOTO

    def statement_type(self) -> str:
        try:
            raw = loads_canonical(self.envelope.payload, "statement payload")
        except InputError as exc:
            raise StatementError(str(exc)) from exc
        found = raw.get("_type") if isinstance(raw, dict) else type(raw).__name__
        if found != STATEMENT_TYPE:
            raise StatementError(f"statement _type is {found!r}, expected {STATEMENT_TYPE!r}")
        return STATEMENT_TYPE

    def predicate(self) -> str:
        self.report.statement = parse_statement(self.envelope.payload)
        verdict = self.statement.predicate.verdict
        reasons = f" ({'; '.join(verdict.reasons)})" if verdict.reasons else ""
        return f"{self.statement.predicateType}: verdict {verdict.status}{reasons}"

    def key_window(self) -> str:
        signed_at = self.statement.predicate.attested_at
        if signed_at > self.now + CLOCK_SKEW:
            raise KeyRegistryError(f"attested_at {format_utc(signed_at)} is in the future (now "
                                   f"{format_utc(self.now)}): the date is false or a clock is wrong")
        valid, problems = [], []
        for keyid in self.report.signers:
            try:
                self.registry.resolve(keyid, at=signed_at, purpose=KeyPurpose.ATTESTATION)
                valid.append(keyid)
            except KeyRegistryError as exc:
                problems.append(exc)
        if len(valid) < self.threshold:
            raise problems[0] if len(problems) == 1 else KeyRegistryError(
                f"{len(valid)} signing key(s) valid at {format_utc(signed_at)}, {self.threshold} required: "
                + "; ".join(map(str, problems)))
        self.report.signers = tuple(valid)
        return f"{len(valid)} signing key(s) valid at {format_utc(signed_at)}"

    def evidence(self) -> str:
        check_evidence(self.statement.predicate)
        changes = self.statement.predicate.manifests
        proofs = sum(len(c.non_inclusion) for c in changes)
        return f"{proofs} non-inclusion proof(s) in {len(changes)} manifest(s)"

    def subjects(self, files: Mapping[str, Path], digests: Mapping[str, str]) -> str:
        known = self.statement.subject_digests()
        both = sorted(set(files) & set(digests))
        if both:
            raise InputError(f"subjects {both} were given both as files and as digests; give each one way")
        expected = {name: (path_sha256(Path(path)), str(path)) for name, path in files.items()}
        expected.update({name: (digest.lower(), "the given digest") for name, digest in digests.items()})
        for name, (actual, source) in sorted(expected.items()):
            if name not in known:
                raise DigestMismatch(f"the attestation has no subject named {name!r}; its subjects are "
                                     f"{sorted(known)}")
            if known[name] != actual:
                raise DigestMismatch(f"subject {name!r} has sha256 {known[name]} in the attestation, but "
                                     f"{source} has {actual}: it is not the attested artifact")
        return f"{len(expected)} subject(s) match"

    def checkpoint(self, note: str) -> str:
        cp = self.report.checkpoint = verify_checkpoint(note, self.registry)
        if cp.timestamp > self.now + CLOCK_SKEW:
            raise CheckpointError(f"checkpoint time {format_utc(cp.timestamp)} is in the future "
                                  f"(now {format_utc(self.now)})")
        return f"{cp.origin} size {cp.size} at {format_utc(cp.timestamp)}"

    def inclusion(self, evidence: InclusionEvidence) -> str:
        cp = self.report.checkpoint
        if evidence.tree_size != cp.size:
            raise InclusionError(f"the inclusion proof is for tree size {evidence.tree_size}, the checkpoint "
                                 f"is of size {cp.size}")
        verify_inclusion(leaf_hash(self.data), evidence.index, cp.size, evidence.proof, cp.root)
        if self.statement.predicate.attested_at > cp.timestamp + CLOCK_SKEW:
            raise InclusionError("the statement is dated after the checkpoint that includes it")
        return f"entry {evidence.index} of {cp.size}"

    def consistency(self, note: str, evidence: ConsistencyEvidence | None) -> str:
        if evidence is None:
            raise InputError("consistency evidence needs the inclusion checkpoint it is relative to "
                             "(verify a bundle, or give the inclusion evidence)")
        old, new = verify_checkpoint_consistency(note, evidence.checkpoint, evidence.proof, self.registry)
        return f"size {old.size} -> {new.size}"


def verify_attestation(envelope: bytes, registry: KeyRegistry, *,
                       subject_files: Mapping[str, Path] | None = None,
                       subject_digests: Mapping[str, str] | None = None,
                       inclusion: InclusionEvidence | None = None,
                       consistency: ConsistencyEvidence | None = None,
                       threshold: int = 1, now: datetime | None = None) -> VerificationReport:
    """Verify envelope bytes offline under the trusted keys of `registry`; failures are in the report."""
    v = _Verification(envelope, registry, threshold,
                      require_utc(now or datetime.now(timezone.utc), "verification time"))
    run, files, digests = v.report.run, subject_files or {}, subject_digests or {}
    run("envelope", v.parse)
    run("signature", v.signature)
    run("payload_type", v.payload_type)
    run("statement_type", v.statement_type)
    run("predicate", v.predicate)
    run("signing_key_window", v.key_window)
    run("evidence", v.evidence)
    run("subjects", (lambda: v.subjects(files, digests)) if files or digests else None,
        "no files or digests given")
    run("checkpoint", (lambda: v.checkpoint(inclusion.checkpoint)) if inclusion else None,
        "no log evidence given")
    run("inclusion", (lambda: v.inclusion(inclusion)) if inclusion else None, "no log evidence given")
    if consistency is not None and inclusion is None:
        run("consistency", lambda: v.consistency("", None))
    else:
        check = (lambda: v.consistency(inclusion.checkpoint, consistency)) if consistency else None
        run("consistency", check, "no second checkpoint given")
    return v.report


def verify_checkpoint_consistency(first: str, second: str, proof: tuple[bytes, ...] | list[bytes],
                                  registry: KeyRegistry) -> tuple[Checkpoint, Checkpoint]:
    """The (older, newer) of two signed checkpoints if `proof` shows one log grew from one to the other."""
    a, b = verify_checkpoint(first, registry), verify_checkpoint(second, registry)
    if a.origin != b.origin:
        raise ConsistencyError(f"the checkpoints are of different logs: {a.origin!r} and {b.origin!r}")
    old, new = (a, b) if a.size <= b.size else (b, a)
    if old.size < new.size and new.timestamp < old.timestamp:
        raise ConsistencyError(f"the checkpoint of size {new.size} is dated before the one of size "
                               f"{old.size}")
    verify_consistency(old.size, new.size, old.root, new.root, proof)
    return old, new


def verify_bundle(bundle: bytes, registry: KeyRegistry, *, subject_files: Mapping[str, Path] | None = None,
                  subject_digests: Mapping[str, str] | None = None,
                  consistency: ConsistencyEvidence | None = None,
                  threshold: int = 1, now: datetime | None = None) -> VerificationReport:
    """Verify a bundle file's bytes: its envelope, and its inclusion in the log under its checkpoint."""
    try:
        parsed = Bundle.from_json(bundle)
    except AttestationError as exc:
        report = VerificationReport(error=exc)
        report.steps.append(StepResult("bundle", "fail", str(exc)))
        report.steps.extend(StepResult(name, "skipped", "an earlier check failed") for name in STEPS[1:])
        return report
    report = verify_attestation(parsed.envelope, registry, subject_files=subject_files,
                                subject_digests=subject_digests, inclusion=parsed.inclusion,
                                consistency=consistency, threshold=threshold, now=now)
    report.steps.insert(0, StepResult("bundle", "pass", f"entry {parsed.inclusion.index} in a bundle"))
    return report


def is_bare_envelope(data: bytes) -> bool:
    """True for a DSSE envelope on its own; anything else is verified (and reported on) as a bundle."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(raw, dict) and "payloadType" in raw and "format" not in raw


def verify_document(data: bytes, registry: KeyRegistry, **options) -> VerificationReport:
    """Verify a file's bytes as `lethe attest verify` does: a bare DSSE envelope on its own, else as a bundle."""
    check = verify_attestation if is_bare_envelope(data) else verify_bundle
    return check(data, registry, **options)
