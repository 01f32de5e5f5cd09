"""What a report reads from a run folder: typed views of `request.json` and `steps/*.json`, checked first.

Every file is scanned for text that looks like an email address or phone number before it is parsed
further; a hit refuses the report, naming the file and the JSON path (never the text). Error messages
name the file and the fields at fault, never the values (they could be personal data).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from attestation.identifier_guard import find_identifiers
from erasure.errors import ErasureError
from erasure.requests import FiledRequest, RequestNotFoundError, request_dir
from erasure.run_folder.files import ATTESTED_STEPS
from erasure.run_folder.files import describe
from erasure.run_folder.results import (RESULT_MODELS, AttestResult, AucReport, BlastResult, EraseResult, ProbeReport,
                                        ProbeResult, RemedyResult, ScopeResult, ScopeRow, ServedAdapter, StepFile,
                                        Verdict)

__all__ = ["STEPS", "AttestResult", "AucReport", "EraseResult", "ProbeReport", "RemedyResult", "ReportError",
           "ReportInputs", "ScopeResult", "ScopeRow", "ServedAdapter", "StepFile", "Verdict", "guard",
           "load_report_inputs", "read_attest_step"]

STEPS = ATTESTED_STEPS
_REQUEST_ID = re.compile(r"er-[0-9a-f]{24}")


class ReportError(ErasureError):
    """A run folder cannot be reported: a file is unreadable, malformed, or holds personal data."""


@dataclass(frozen=True)
class ReportInputs:
    """A run folder, read and checked: the request and the steps it reached."""

    folder: Path
    request: FiledRequest
    steps: dict[str, StepFile]
    results: dict[str, Any]


def guard(value: Any, where: str) -> None:
    """ReportError if any string in `value` looks like an email address or phone number."""
    found = find_identifiers(value)
    if found:
        spots = ", ".join(f"{path} ({kind})" for path, kind in found[:10])
        raise ReportError(f"{where} holds what looks like raw personal data at {spots}; a report may hold only "
                          "ids, hashes and figures, so none was written. Remove or hash the value in that file")


def _read_json(path: Path) -> Any:
    """A run-folder JSON file, guarded; ReportError names the file when it is unreadable or unsafe."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot read it as JSON ({exc})") from None
    guard(value, str(path))
    return value


def _validate(model: type[BaseModel], value: Any, path: Path, what: str) -> Any:
    """`value` as `model`; ReportError names the file and the fields at fault."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ReportError(f"{path}: {what} does not match the run-folder format: {describe(exc)}") from None


def _read_step(path: Path) -> StepFile:
    """One step file, guarded and checked."""
    return _validate(StepFile, _read_json(path), path, "the step file")


def _step_result(name: str, step: StepFile, path: Path) -> Any:
    """The typed result of one step."""
    if name == "blast_radius":
        blast = _validate(BlastResult, step.result, path, "the blast_radius result")
        return blast, blast.served_adapters, blast.training.model_dump()
    if name in ("probe_before", "probe_after"):
        return _validate(ProbeResult, step.result, path, f"the {name} result").adapters
    return _validate(RESULT_MODELS[name], step.result, path, f"the {name} result")


def load_report_inputs(state_dir: Path, request_id: str) -> ReportInputs:
    """Read and check a request's run folder (ReportError names the file at fault)."""
    folder = request_dir(state_dir, request_id)
    path = folder / "request.json"
    if not _REQUEST_ID.fullmatch(request_id) or not path.is_file():
        raise RequestNotFoundError(f"no erasure request {request_id!r}; `lethe erase list` shows the filed ones")
    request = _validate(FiledRequest, _read_json(path), path, "the request")
    steps, results = {}, {}
    for name in STEPS:
        path = folder / "steps" / f"{name}.json"
        if not path.is_file():
            continue
        step = _read_step(path)
        if step.step != name:
            raise ReportError(f"{path}: names step {step.step!r}, expected {name!r}")
        steps[name], results[name] = step, _step_result(name, step, path)
    return ReportInputs(folder, request, steps, results)


def read_attest_step(folder: Path) -> tuple[StepFile, AttestResult] | None:
    """A run folder's attest step and its result, checked; None when the request is not attested yet."""
    path = folder / "steps" / "attest.json"
    if not path.is_file():
        return None
    step = _read_step(path)
    return step, _validate(AttestResult, step.result, path, "the attest result")
