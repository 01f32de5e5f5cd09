"""A request's run folder: the step names in order, and each step's result written and read atomically.

`requests/<id>/request.json` is the filed request; `steps/<name>.json` holds one step's result with when it
ran. A step that is there is done: a rerun skips it, so a request resumes where it stopped. Results are
checked against `results.RESULT_MODELS` when written and read through them (`RunSteps`).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from erasure.errors import ErasureError, InvalidRequestError
from erasure.identity import IdentityResult
from erasure.requests import request_dir, write_json_atomic
from erasure.run_folder.results import (RESULT_MODELS, AttestResult, BlastResult, EraseResult, ProbeResult,
                                        RemedyResult, ScopeResult, StepFile)
from erasure.statistics import StatisticsResult
from erasure.sweep import SweepResult

__all__ = ["ATTESTED_STEPS", "STEPS", "RunFolderError", "RunSteps", "StepFormatError", "save_step", "step_results",
           "steps_dir"]

# identity → scope (at filing) → sweep_before (the scope's last check) → blast radius → probes, remedy →
# sweep_after (nothing left holds the person's identifiers) → statistics (false alarms across the run) →
# erase the records → attest → report.
STEPS = ("identity", "scope", "sweep_before", "blast_radius", "probe_before", "remedy", "probe_after",
         "sweep_after", "statistics", "erase_records", "attest", "report")
ATTESTED_STEPS = STEPS[:-1]  # what an attestation and its report speak for
log = logging.getLogger(__name__)


class RunFolderError(ErasureError):
    """A step file cannot be read as its model, or a step asked for is not done yet."""


class StepFormatError(RuntimeError):
    """A bug: the engine built a step result that does not match its model (nothing was written)."""


def describe(exc: ValidationError) -> str:
    """Where and what is wrong, without the input values (they could be personal data)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '$'}: {e['msg']}" for e in exc.errors()[:5])


def steps_dir(state_dir: Path, request_id: str) -> Path:
    return request_dir(state_dir, request_id) / "steps"


class RunSteps:
    """A request's steps as written: each step's times, and its result read through its model (once)."""

    def __init__(self, folder: Path, documents: dict[str, dict[str, Any]]):
        self.folder = folder
        self._documents = documents
        self._results: dict[str, BaseModel] = {}

    @classmethod
    def read(cls, state_dir: Path, request_id: str) -> RunSteps:
        folder = steps_dir(state_dir, request_id)
        documents = {}
        for name in STEPS:
            path = folder / f"{name}.json"
            if path.is_file():
                documents[name] = json.loads(path.read_text(encoding="utf-8"))
        return cls(folder, documents)

    @property
    def names(self) -> tuple[str, ...]:
        """The steps done, in the order they run."""
        return tuple(self._documents)

    def __contains__(self, name: object) -> bool:
        return name in self._documents

    def _document(self, name: str) -> dict[str, Any]:
        if name not in self._documents:
            raise RunFolderError(f"{self.folder}: the {name} step has not run yet")
        return self._documents[name]

    def file(self, name: str) -> StepFile:
        """The step's file: when it started and finished, and its result as written."""
        return _validated(StepFile, self._document(name), self.folder / f"{name}.json", "the step file")

    def result(self, name: str) -> Any:
        """The step's result as its model (RESULT_MODELS)."""
        if name not in self._results:
            self._results[name] = _validated(RESULT_MODELS[name], self._document(name)["result"],
                                             self.folder / f"{name}.json", f"the {name} result")
        return self._results[name]

    def result_document(self, name: str) -> dict[str, Any]:
        """The step's result exactly as written (to rewrite it, as a review of the scope does)."""
        return self._document(name)["result"]

    @property
    def identity(self) -> IdentityResult:
        return self.result("identity")

    @property
    def scope(self) -> ScopeResult:
        return self.result("scope")

    @property
    def sweep_before(self) -> SweepResult:
        return self.result("sweep_before")

    @property
    def blast_radius(self) -> BlastResult:
        return self.result("blast_radius")

    @property
    def probe_before(self) -> ProbeResult:
        return self.result("probe_before")

    @property
    def remedy(self) -> RemedyResult:
        return self.result("remedy")

    @property
    def probe_after(self) -> ProbeResult:
        return self.result("probe_after")

    @property
    def sweep_after(self) -> SweepResult:
        return self.result("sweep_after")

    @property
    def statistics(self) -> StatisticsResult:
        return self.result("statistics")

    @property
    def erase_records(self) -> EraseResult:
        return self.result("erase_records")

    @property
    def attest(self) -> AttestResult:
        return self.result("attest")


def _validated(model: type[BaseModel], value: Any, path: Path, what: str) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise RunFolderError(f"{path}: {what} does not match the run-folder format: {describe(exc)}") from None


def step_results(state_dir: Path, request_id: str) -> RunSteps:
    """The persisted steps of a request."""
    return RunSteps.read(state_dir, request_id)


def save_step(state_dir: Path, request_id: str, name: str, started: datetime, result: dict | BaseModel) -> dict:
    """Check one step's result against its model, write it with its times; returns the document written."""
    if name not in STEPS:
        raise InvalidRequestError(f"unknown step {name!r}; steps are {', '.join(STEPS)}")
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    try:
        RESULT_MODELS[name].model_validate(result)
    except ValidationError as exc:
        raise StepFormatError(f"the {name} result of {request_id} does not match its model: {describe(exc)}") from None
    finished = datetime.now(timezone.utc)
    document = {"step": name, "started_at": started.isoformat(), "finished_at": finished.isoformat(),
                "seconds": (finished - started).total_seconds(), "result": result}
    write_json_atomic(steps_dir(state_dir, request_id) / f"{name}.json", document)
    log.info("request %s: step %s done in %.1f s", request_id, name, document["seconds"])
    return document
