"""Erasure attestations: in-toto statements in DSSE envelopes, signed, logged, and verifiable offline.

Stands alone (no torch, no Neo4j, nothing else from Lethe) so an auditor can verify with this
package and its key registry only.
"""

from __future__ import annotations

from attestation.bundle import (BUNDLE_FORMAT, CONSISTENCY_FORMAT, Bundle, ConsistencyEvidence,
                                InclusionEvidence, make_bundle, make_consistency_evidence, publish)
from attestation.checkpoint import (Checkpoint, SignedCheckpoint, parse_checkpoint, sign_checkpoint,
                                    verify_checkpoint)
from attestation.digests import dir_sha256, file_sha256, path_sha256
from attestation.dsse import (PAYLOAD_TYPE_IN_TOTO, DsseSignature, Envelope, pae, sign_envelope,
                              verify_envelope)
from attestation.errors import (EXIT_CODES, EXIT_OK, AttestationError, CheckpointError, ConsistencyError,
                                DigestMismatch, EvidenceError, IdentifierLeakError, InclusionError,
                                InputError, KeyRegistryError, LogError, PayloadTypeError, ProofError,
                                SignatureError, StatementError, exit_code_for)
from attestation.identifier_guard import find_identifiers, refuse_identifiers
from attestation.keys import (KeyEntry, KeyPurpose, KeyRegistry, SigningKey, generate_signing_key, key_id,
                              load_private_key, public_key_pem, save_private_key)
from attestation.manifest_proofs import LeafProof, NonInclusionProof, scope_root, verify_non_inclusion
from attestation.predicate import (PREDICATE_TYPE_V1, AucEstimate, BlastCounts, BlastIds, BlastRadius,
                                   ErasurePredicate, HoldoutStats, ManifestChange, ManifestRef, Method,
                                   Probes, ProbeSummary, RecordScore, Request, Scope, Timings, Utility,
                                   UtilitySnapshot, Verdict, Versions, check_evidence)
from attestation.predicate_v2 import (PREDICATE_TYPE_V2, ErasurePredicateV2, FalseAlarmControl, Flag,
                                      IdentifierSummary, IdentitySummary, SweepHitSummary, Sweeps, SweepSummary,
                                      Training)
from attestation.statement import (PREDICATE_TYPE, STATEMENT_TYPE, AnyStatement, DigestSet, ResourceDescriptor,
                                   Statement, StatementV1, build_statement,
                                   parse_statement, sign_statement, statement_payload, subject,
                                   subject_of_path, subjects_from)
from attestation.transparency_log import TransparencyLog
from attestation.report import STEPS, StepResult, VerificationReport
from attestation.verifier import (is_bare_envelope, verify_attestation, verify_bundle, verify_checkpoint_consistency,
                                  verify_document)

__all__ = [
    # statements and predicate
    "STATEMENT_TYPE", "PREDICATE_TYPE", "PREDICATE_TYPE_V1", "PREDICATE_TYPE_V2", "Statement", "StatementV1",
    "AnyStatement", "ResourceDescriptor", "DigestSet", "subject",
    "subject_of_path", "subjects_from", "build_statement", "statement_payload", "sign_statement",
    "parse_statement", "ErasurePredicate", "Request", "Scope", "BlastRadius", "BlastCounts", "BlastIds",
    "Method", "ManifestChange", "ManifestRef", "Probes", "ProbeSummary", "HoldoutStats", "AucEstimate",
    "RecordScore", "Utility", "UtilitySnapshot", "Timings", "Versions", "Verdict", "check_evidence",
    "ErasurePredicateV2", "IdentitySummary", "IdentifierSummary", "Sweeps", "SweepSummary", "SweepHitSummary",
    "FalseAlarmControl", "Flag", "Training",
    "LeafProof", "NonInclusionProof", "verify_non_inclusion", "scope_root",
    "find_identifiers", "refuse_identifiers",
    # envelopes and keys
    "PAYLOAD_TYPE_IN_TOTO", "pae", "Envelope", "DsseSignature", "sign_envelope", "verify_envelope",
    "SigningKey", "KeyPurpose", "KeyEntry", "KeyRegistry", "generate_signing_key", "key_id",
    "save_private_key", "load_private_key", "public_key_pem",
    # transparency log
    "TransparencyLog", "Checkpoint", "SignedCheckpoint", "sign_checkpoint", "parse_checkpoint",
    "verify_checkpoint", "Bundle", "BUNDLE_FORMAT", "InclusionEvidence", "make_bundle", "publish",
    "CONSISTENCY_FORMAT", "make_consistency_evidence",
    # verification
    "verify_attestation", "verify_bundle", "verify_checkpoint_consistency", "verify_document", "is_bare_envelope", "ConsistencyEvidence",
    "VerificationReport", "StepResult", "STEPS", "file_sha256", "dir_sha256", "path_sha256",
    # errors and exit codes
    "AttestationError", "InputError", "SignatureError", "KeyRegistryError", "PayloadTypeError",
    "StatementError", "IdentifierLeakError", "DigestMismatch", "LogError", "ProofError", "InclusionError",
    "CheckpointError", "ConsistencyError", "EvidenceError", "EXIT_CODES", "EXIT_OK", "exit_code_for",
]
