"""`lethe attest`: verify erasure attestations offline; manage the signing keys and the transparency log.

None of these commands needs a pepper or Neo4j: an auditor runs `verify` with a bundle and a registry.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from attestation import (EXIT_CODES, AttestationError, Bundle, ConsistencyEvidence, InputError, KeyRegistry,
                         VerificationReport, parse_checkpoint, verify_document)
from lethe.cli import render
from lethe.cli.errors import fail, friendly_errors
from erasure.keyring import Keyring, KeyringPaths
from lethe.settings import Settings
from lineage.limits import InputLimitError, read_bounded

attest_app = typer.Typer(help="Verify erasure attestations offline; manage the signing keys and the "
                              "transparency log.", no_args_is_help=True)
console = render.console
F = TypeVar("F", bound=Callable)
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_STATUS = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skipped": "[dim]skipped[/]"}
_EXIT_CODES_HELP = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES) + "."


def attestation_errors(fn: F) -> F:
    """Print an attestation error as one line and exit with its documented code (attestation/errors.py)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AttestationError as exc:
            fail(escape(str(exc)), code=exc.exit_code)

    return wrapper  # type: ignore[return-value]


def _state_dir() -> Path:
    return Settings().state_dir


def _read(path: Path, what: str) -> bytes:
    """A bundle, registry or proof file, within Lethe's document size limit (lineage.limits)."""
    try:
        with path.open("rb") as handle:
            return read_bounded(handle, f"{what} {path}")
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from exc
    except InputLimitError as exc:
        raise InputError(str(exc)) from None


def _pairs(values: list[str], option: str) -> dict[str, str]:
    """NAME=VALUE options as a dict; the name ends at the first '='."""
    pairs: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            fail(f"{option} takes NAME=VALUE, got {item!r}")
        if name in pairs:
            fail(f"{option} names subject {name!r} twice; give each subject once")
        pairs[name] = value
    return pairs


def _registry(keys: Path | None) -> KeyRegistry:
    if keys is None:
        keys = KeyringPaths.under(_state_dir()).registry
        if not keys.exists():
            fail(f"no key registry given, and this machine has none at {keys}: pass --keys REGISTRY.json, "
                 "the registry the signer published (never one that arrived with the attestation)")
    return KeyRegistry.load(keys)


def _print_report(report: VerificationReport, source: Path) -> None:
    table = Table(title=f"Verification of {source}", title_justify="left")
    table.add_column("step")
    table.add_column("result")
    table.add_column("detail", overflow="fold")  # key ids and digests whole, never cut short
    for step in report.steps:
        table.add_row(step.name, _STATUS[step.status], Text(step.detail))
    console.print(table)
    console.print(Text(report.summary, style="bold green" if report.ok else "bold red"), soft_wrap=True)


@attest_app.command(epilog=_EXIT_CODES_HELP)
@friendly_errors
@attestation_errors
def verify(
    path: Path = typer.Argument(..., help="an attestation bundle, or a bare DSSE envelope"),
    keys: Path | None = typer.Option(None, "--keys", help="the key registry to trust (default: this "
                                     "machine's keyring's registry.json)"),
    subject: list[str] = typer.Option([], "--subject", help="NAME=PATH: the subject's digest must match this "
                                      "file or directory (repeatable)"),
    digest: list[str] = typer.Option([], "--digest", help="NAME=SHA256: the subject's digest must be this "
                                     "(repeatable)"),
    consistency: Path | None = typer.Option(None, "--consistency", help="a consistency file (`lethe attest "
                                            "consistency`) proving the log only grew since the bundle"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Verify an attestation offline: signature, types, predicate, subjects, log inclusion, consistency."""
    files = {name: Path(value) for name, value in _pairs(subject, "--subject").items()}
    digests = _pairs(digest, "--digest")
    for name, value in digests.items():
        if not _SHA256.match(value):
            fail(f"--digest {name}={value!r}: a SHA-256 digest is 64 hex characters")
    registry = _registry(keys)
    evidence = (None if consistency is None
                else ConsistencyEvidence.from_json(_read(consistency, "consistency file")))
    data = _read(path, "attestation")
    report = verify_document(data, registry, subject_files=files, subject_digests=digests, consistency=evidence,
                             now=datetime.now(timezone.utc))
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report, path)
    if not report.ok:
        raise typer.Exit(report.exit_code)


@attest_app.command()
@friendly_errors
@attestation_errors
def keygen() -> None:
    """Create this machine's attestation keys and log if missing; print the key ids and the registry path."""
    keyring = Keyring.open(_state_dir())
    console.print(f"attestation keyring in {keyring.paths.directory} "
                  + ("created" if keyring.created else "already exists (nothing changed)"), soft_wrap=True)
    console.print(f"attestation key  {keyring.signing_keys[0].keyid}", soft_wrap=True)
    console.print(f"log key          {keyring.log_keys[0].keyid}", soft_wrap=True)
    console.print(f"registry         {keyring.registry_path}  (give this file to auditors)", soft_wrap=True)
    console.print(f"log              {keyring.paths.log}  ({keyring.log.origin}, {keyring.log.size} entries)",
                  soft_wrap=True)


@attest_app.command()
@friendly_errors
@attestation_errors
def rotate() -> None:
    """Replace the attestation signing key; the old key stays trusted for what it signed until now."""
    keyring = Keyring.open(_state_dir(), create=False)
    old = keyring.signing_keys[0].keyid
    new = keyring.rotate_signing_key(datetime.now(timezone.utc))
    console.print(f"attestation key rotated: {old} (trusted until now) -> {new.keyid}", soft_wrap=True)
    console.print(f"give auditors the updated {keyring.registry_path}", soft_wrap=True)


def _checkpoint_text(path: Path) -> str:
    """The checkpoint note in a note file, or the one inside a bundle file."""
    data = _read(path, "checkpoint file")
    if data.lstrip().startswith(b"{"):
        return Bundle.from_json(data).inclusion.checkpoint
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"checkpoint file {path} is not UTF-8 text (byte {exc.start})") from exc


@attest_app.command()
@friendly_errors
@attestation_errors
def consistency(
    old: Path = typer.Argument(..., help="an older checkpoint (from `lethe attest checkpoint --out`) or a "
                               "bundle holding one"),
    out: Path = typer.Option(..., "--out", help="where to write the consistency file"),
) -> None:
    """Prove that the local log's latest checkpoint extends an older one (for `verify --consistency`)."""
    keyring = Keyring.open(_state_dir(), create=False)
    older = _checkpoint_text(old)
    evidence = keyring.consistency_evidence(older)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(evidence.to_json())
    old_size = parse_checkpoint(older).checkpoint.size
    new_size = parse_checkpoint(evidence.checkpoint).checkpoint.size
    console.print(f"log size {old_size} -> {new_size}: consistency proof written to {out}", soft_wrap=True)


@attest_app.command()
@friendly_errors
@attestation_errors
def checkpoint(
    out: Path | None = typer.Option(None, "--out", help="write the checkpoint here instead of printing it"),
) -> None:
    """Print (or write) the local log's latest signed checkpoint, after auditing the log."""
    note = Keyring.open(_state_dir(), create=False).latest_checkpoint()
    if out is None:
        typer.echo(note, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(note.encode("utf-8"))
    size = parse_checkpoint(note).checkpoint.size
    console.print(f"checkpoint of size {size} written to {out}", soft_wrap=True)
