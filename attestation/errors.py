"""The attestation package's errors, each with the exit code `lethe attest verify` returns for it.

| code | error               | meaning                                                                 |
| ---- | ------------------- | ----------------------------------------------------------------------- |
| 0    | (none)              | every requested check passed                                            |
| 1    | AttestationError    | any other attestation failure (a bug or an unexpected state)            |
| 2    | InputError          | an input cannot be read or is not well-formed (file, JSON, base64,       |
|      |                     | envelope, bundle, key registry, log files)                              |
| 10   | SignatureError      | no valid signature from a trusted key                                   |
| 10   | KeyRegistryError    | the key is unknown, of the wrong purpose, not yet valid, expired or     |
|      |                     | revoked at the signing time                                             |
| 11   | PayloadTypeError    | the envelope's payloadType is not in-toto's                             |
| 12   | StatementError      | statement type, predicate type, predicate schema or policy (verdict)    |
| 12   | IdentifierLeakError | something that looks like an email address or phone number             |
| 13   | DigestMismatch      | a subject's digest differs from the file given for it                   |
| 14   | InclusionError      | the envelope is not proven to be in the log under the checkpoint        |
| 15   | CheckpointError     | a checkpoint is malformed or its signature does not verify              |
| 15   | ConsistencyError    | two checkpoints are not proven consistent (the log was rewritten)       |
| 16   | EvidenceError       | non-inclusion evidence does not prove the scope absent from a manifest  |

`LogError` (code 14) reports a broken log on disk to its operator; `ProofError` (code 14) a malformed
Merkle proof. A caller maps an exception to its code with `exit_code_for`.
"""

from __future__ import annotations


class AttestationError(Exception):
    """Base of every error raised by `attestation`."""

    exit_code = 1


class InputError(AttestationError):
    """An input cannot be read or is not well-formed; names the input and the defect."""

    exit_code = 2


class SignatureError(AttestationError):
    """No signature verifies under a trusted key (or fewer than the threshold)."""

    exit_code = 10


class KeyRegistryError(SignatureError):
    """A key id does not resolve to a key valid for this purpose at this time."""

    exit_code = 10


class PayloadTypeError(AttestationError):
    """The envelope's payloadType is not the one expected."""

    exit_code = 11


class StatementError(AttestationError):
    """The statement or its predicate is of the wrong type, malformed, or violates policy."""

    exit_code = 12


class IdentifierLeakError(StatementError):
    """A statement holds a value that looks like a raw personal identifier."""

    exit_code = 12


class DigestMismatch(AttestationError):
    """A subject's digest differs from the digest of the file or directory given for it."""

    exit_code = 13


class LogError(AttestationError):
    """The transparency log on disk is unusable or inconsistent with its checkpoints."""

    exit_code = 14


class ProofError(LogError):
    """A Merkle proof is malformed or does not lead to the expected root."""

    exit_code = 14


class InclusionError(ProofError):
    """The envelope is not proven to be included in the log under the given checkpoint."""

    exit_code = 14


class CheckpointError(AttestationError):
    """A signed checkpoint is malformed or not signed by a trusted log key."""

    exit_code = 15


class ConsistencyError(CheckpointError):
    """Two checkpoints are not proven to be views of one append-only log."""

    exit_code = 15


class EvidenceError(StatementError):
    """Non-inclusion evidence does not prove the scope records absent from an after-manifest."""

    exit_code = 16


EXIT_OK = 0

# The documented table, for `--help` texts and a test that keeps it in step with the classes.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "verified: every requested check passed"),
    (AttestationError.exit_code, "unexpected attestation failure"),
    (InputError.exit_code, "unreadable or malformed input"),
    (SignatureError.exit_code, "bad signature, or key untrusted, unknown, expired or revoked"),
    (PayloadTypeError.exit_code, "wrong DSSE payloadType"),
    (StatementError.exit_code, "wrong statement or predicate type, malformed predicate, or policy violation"),
    (DigestMismatch.exit_code, "a subject digest does not match its file"),
    (InclusionError.exit_code, "log inclusion not proven"),
    (CheckpointError.exit_code, "checkpoint signature or consistency not proven"),
    (EvidenceError.exit_code, "non-inclusion evidence does not verify"),
)


def exit_code_for(error: BaseException | None) -> int:
    """The exit code for an outcome: 0 for none, the class's code for an AttestationError, else 1."""
    if error is None:
        return EXIT_OK
    return error.exit_code if isinstance(error, AttestationError) else AttestationError.exit_code
